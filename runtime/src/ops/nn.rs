//! Layer ops: RMSNorm, RoPE, SwiGLU, embedding.

use super::{check_f32, check_float, check_index, check_shape, dispatch};
use crate::backend::RmsNormGrads;
use crate::{Error, Result, Tensor};

fn rows_of(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    if x.rank() == 0 {
        return Err(Error::Shape {
            op,
            msg: "`x` is a scalar, expected [..., C]".into(),
        });
    }
    let c = x.dim(x.rank() - 1);
    Ok((x.numel().checked_div(c).unwrap_or(0), c))
}

/// `rstd` holds one value for each of the `n` rows of `x`.
fn check_rstd_len(op: &'static str, rstd: &Tensor, n: usize, x: &Tensor) -> Result<()> {
    if rstd.numel() == n {
        return Ok(());
    }
    Err(Error::Shape {
        op,
        msg: format!(
            "`rstd` {:?} must have {n} elements for x {:?}",
            rstd.shape(),
            x.shape()
        ),
    })
}

/// RMSNorm forward, as HF `LlamaRMSNorm`: `out = w * (x * rstd)` with
/// `rstd[n] = 1 / sqrt(mean_c(x[n, c]^2) + eps)`.
///
/// `x`, `out`: `[..., C]` float (N = product of the leading dims); `w`: `[C]` float;
/// `rstd`: F32 with N elements (any shape, e.g. `[N]` or `[B, T]`), overwritten and saved for
/// [`rmsnorm_bwd`].
pub fn rmsnorm_fwd(
    out: &mut Tensor,
    rstd: &mut Tensor,
    x: &Tensor,
    w: &Tensor,
    eps: f32,
) -> Result<()> {
    const OP: &str = "rmsnorm_fwd";
    let (n, c) = rows_of(OP, x)?;
    check_float(OP, "x", x)?;
    check_float(OP, "w", w)?;
    check_float(OP, "out", out)?;
    check_f32(OP, "rstd", rstd)?;
    check_shape(OP, "w", w, &[c])?;
    check_shape(OP, "out", out, x.shape())?;
    check_rstd_len(OP, rstd, n, x)?;
    dispatch(OP, &[out, rstd, x, w])?.rmsnorm_fwd(out, rstd, x, w, eps)
}

/// RMSNorm backward. Shapes as in [`rmsnorm_fwd`]; `dout` like `x`, `dx` like `x`, `dw: [C]` F32.
/// `dw` is **accumulated** (`dw += sum_n dout * x * rstd`). `dx` is overwritten, or accumulated
/// when `accumulate_dx` (handy for the residual stream: copy the residual grad in, then add).
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_bwd(
    dx: &mut Tensor,
    dw: &mut Tensor,
    dout: &Tensor,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    accumulate_dx: bool,
) -> Result<()> {
    const OP: &str = "rmsnorm_bwd";
    let (n, c) = rows_of(OP, x)?;
    for (name, t) in [("dx", &*dx), ("dout", dout), ("x", x), ("w", w)] {
        check_float(OP, name, t)?;
    }
    check_f32(OP, "dw", dw)?;
    check_f32(OP, "rstd", rstd)?;
    check_shape(OP, "w", w, &[c])?;
    check_shape(OP, "dw", dw, &[c])?;
    check_shape(OP, "dout", dout, x.shape())?;
    check_shape(OP, "dx", dx, x.shape())?;
    check_rstd_len(OP, rstd, n, x)?;
    let be = dispatch(OP, &[dx, dw, dout, x, w, rstd])?;
    be.rmsnorm_bwd(RmsNormGrads {
        dx,
        dw,
        dout,
        x,
        w,
        rstd,
        accumulate_dx,
    })
}

fn check_rope(
    op: &'static str,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    pos: &Tensor,
) -> Result<()> {
    check_float(op, "x", x)?;
    check_f32(op, "cos", cos)?;
    check_f32(op, "sin", sin)?;
    check_index(op, "pos", pos)?;
    let bad = |why: &str| Error::Shape {
        op,
        msg: format!(
            "{why}: x {:?}, cos {:?}, sin {:?}, pos {:?}",
            x.shape(),
            cos.shape(),
            sin.shape(),
            pos.shape()
        ),
    };
    if x.rank() < 2 || cos.rank() != 2 || cos.shape() != sin.shape() {
        return Err(bad("expected x [..., H, D] and cos/sin [P, D/2]"));
    }
    let d = x.dim(x.rank() - 1);
    let h = x.dim(x.rank() - 2);
    if !d.is_multiple_of(2) || cos.dim(1) * 2 != d {
        return Err(bad("head dim must be even and equal 2 * cos.shape[1]"));
    }
    let tokens = x.numel().checked_div(h * d).unwrap_or(0);
    if pos.numel() != tokens {
        return Err(bad(&format!(
            "pos must hold one position per token ({tokens})"
        )));
    }
    Ok(())
}

/// Applies rotary embeddings **in place**, HF `rotate_half` convention (LlamaForCausalLM):
/// for each head vector of length D and `i < D/2`, with `p = pos[token]`:
/// `x'[i] = x[i] cos[p,i] - x[i+D/2] sin[p,i]`, `x'[i+D/2] = x[i+D/2] cos[p,i] + x[i] sin[p,i]`.
///
/// `x`: `[..., H, D]` float, one position per token (the product of the leading dims, e.g.
/// `[B, T, H, D]` with `pos: [B, T]`); `pos`: index tensor, values in `0..P`;
/// `cos`, `sin`: `[P, D/2]` F32 from [`crate::rope::rope_tables`].
pub fn rope_fwd(x: &mut Tensor, cos: &Tensor, sin: &Tensor, pos: &Tensor) -> Result<()> {
    check_rope("rope_fwd", x, cos, sin, pos)?;
    dispatch("rope_fwd", &[x, cos, sin, pos])?.rope(x, cos, sin, pos, false)
}

/// RoPE backward **in place**: turns `d out` into `d x` (the inverse rotation). Same layouts as
/// [`rope_fwd`].
pub fn rope_bwd(dx: &mut Tensor, cos: &Tensor, sin: &Tensor, pos: &Tensor) -> Result<()> {
    check_rope("rope_bwd", dx, cos, sin, pos)?;
    dispatch("rope_bwd", &[dx, cos, sin, pos])?.rope(dx, cos, sin, pos, true)
}

/// SwiGLU forward: `out = silu(gate) * up`, `silu(g) = g * sigmoid(g)`. Float tensors of one
/// shape (e.g. `[N, F]`); nothing extra is saved (the backward re-reads `gate` and `up`).
pub fn swiglu_fwd(out: &mut Tensor, gate: &Tensor, up: &Tensor) -> Result<()> {
    const OP: &str = "swiglu_fwd";
    for (name, t) in [("out", &*out), ("gate", gate), ("up", up)] {
        check_float(OP, name, t)?;
        check_shape(OP, name, t, gate.shape())?;
    }
    dispatch(OP, &[out, gate, up])?.swiglu_fwd(out, gate, up)
}

/// SwiGLU backward: `dgate = dout * up * silu'(gate)`, `dup = dout * silu(gate)`, both
/// overwritten; all tensors of one shape.
pub fn swiglu_bwd(
    dgate: &mut Tensor,
    dup: &mut Tensor,
    dout: &Tensor,
    gate: &Tensor,
    up: &Tensor,
) -> Result<()> {
    const OP: &str = "swiglu_bwd";
    for (name, t) in [
        ("dgate", &*dgate),
        ("dup", &*dup),
        ("dout", dout),
        ("gate", gate),
        ("up", up),
    ] {
        check_float(OP, name, t)?;
        check_shape(OP, name, t, gate.shape())?;
    }
    dispatch(OP, &[dgate, dup, dout, gate, up])?.swiglu_bwd(dgate, dup, dout, gate, up)
}

/// `ids` `[...]` indexes the rows of the `[V, C]` `table`, one `[..., C]` row per id in `rows`.
fn check_embedding(
    op: &'static str,
    ids: &Tensor,
    (table_name, table): (&str, &Tensor),
    (rows_name, rows): (&str, &Tensor),
) -> Result<()> {
    check_float(op, rows_name, rows)?;
    super::check_rank(op, table_name, table, 2)?;
    let mut want = ids.shape().to_vec();
    want.push(table.dim(1));
    check_shape(op, rows_name, rows, &want)
}

/// Embedding lookup: `out[i, :] = table[ids[i], :]`. `ids`: index tensor of any shape `[...]`;
/// `table`: `[V, C]` float; `out`: `[..., C]` float. An id outside `0..V` is an error.
pub fn embedding_fwd(out: &mut Tensor, ids: &Tensor, table: &Tensor) -> Result<()> {
    const OP: &str = "embedding_fwd";
    check_index(OP, "ids", ids)?;
    check_float(OP, "table", table)?;
    check_embedding(OP, ids, ("table", table), ("out", out))?;
    dispatch(OP, &[out, ids, table])?.embedding_fwd(out, ids, table)
}

/// Embedding backward (scatter-add): `dtable[ids[i], :] += dout[i, :]`, **accumulated**.
/// `dtable`: `[V, C]` F32; `dout`: `[..., C]` float; `ids` as in [`embedding_fwd`].
pub fn embedding_bwd(dtable: &mut Tensor, dout: &Tensor, ids: &Tensor) -> Result<()> {
    const OP: &str = "embedding_bwd";
    check_index(OP, "ids", ids)?;
    check_f32(OP, "dtable", dtable)?;
    check_embedding(OP, ids, ("dtable", dtable), ("dout", dout))?;
    dispatch(OP, &[dtable, dout, ids])?.embedding_bwd(dtable, dout, ids)
}
