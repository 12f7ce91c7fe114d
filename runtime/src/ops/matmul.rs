//! Matrix multiplication.

use super::{check_float, dispatch};
use crate::backend::{MatmulDims, MatmulParams};
use crate::{Error, Result, Tensor};

/// Batched matmul `out[i] = alpha * op(a[i]) @ op(b[i]) + beta * out[i]`, f32 accumulation.
///
/// Layouts (row-major, `...` = leading batch dims, flattened to `batch`):
/// - `a`: `[..., m, k]`, or `[..., k, m]` with `trans_a`;
/// - `b`: `[..., k, n]`, or `[..., n, k]` with `trans_b`; `b` may instead be rank 2 and shared
///   by every batch entry (a weight matrix: `y = x @ W^T` is `trans_b` with `W: [n, k]`);
/// - `out`: `[..., m, n]` with `a`'s batch dims.
///
/// Any float dtypes (BF16/F16 inputs are widened per call). `beta = 0` overwrites `out`
/// (old contents ignored, even NaN); `beta = 1` accumulates (`dW += dy^T @ x` is
/// `matmul(dW, dy, x, {trans_a: true, beta: 1})` with `dy: [N, n]`, `x: [N, k]`).
pub fn matmul(out: &mut Tensor, a: &Tensor, b: &Tensor, p: &MatmulParams) -> Result<()> {
    const OP: &str = "matmul";
    check_float(OP, "out", out)?;
    check_float(OP, "a", a)?;
    check_float(OP, "b", b)?;
    let bad = |why: &str| -> Error {
        Error::Shape {
            op: OP,
            msg: format!(
                "{why}: a {:?} (trans_a={}), b {:?} (trans_b={}), out {:?}",
                a.shape(),
                p.trans_a,
                b.shape(),
                p.trans_b,
                out.shape()
            ),
        }
    };
    if a.rank() < 2 || b.rank() < 2 {
        return Err(bad("a and b need rank >= 2"));
    }
    let (ra, rb) = (a.rank(), b.rank());
    let (m, ka) = if p.trans_a {
        (a.dim(ra - 1), a.dim(ra - 2))
    } else {
        (a.dim(ra - 2), a.dim(ra - 1))
    };
    let (kb, n) = if p.trans_b {
        (b.dim(rb - 1), b.dim(rb - 2))
    } else {
        (b.dim(rb - 2), b.dim(rb - 1))
    };
    if ka != kb {
        return Err(bad("inner dims differ"));
    }
    let lead = &a.shape()[..ra - 2];
    let batch: usize = lead.iter().product();
    let b_batch_stride = if rb == 2 {
        0
    } else if &b.shape()[..rb - 2] == lead {
        kb * n
    } else {
        return Err(bad("batch dims of a and b differ"));
    };
    let mut want = lead.to_vec();
    want.extend([m, n]);
    if out.shape() != want.as_slice() {
        return Err(bad(&format!("out must be {want:?}")));
    }
    let dims = MatmulDims {
        batch,
        m,
        n,
        k: ka,
        b_batch_stride,
    };
    dispatch(OP, &[out, a, b])?.matmul(out, a, b, &dims, p)
}

/// Allocating convenience: `op(a) @ op(b)` into a new F32 tensor.
pub fn matmul_new(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    if a.rank() < 2 || b.rank() < 2 {
        return Err(Error::Shape {
            op: "matmul",
            msg: format!("a {:?} and b {:?} need rank >= 2", a.shape(), b.shape()),
        });
    }
    let (ra, rb) = (a.rank(), b.rank());
    let m = if trans_a {
        a.dim(ra - 1)
    } else {
        a.dim(ra - 2)
    };
    let n = if trans_b {
        b.dim(rb - 2)
    } else {
        b.dim(rb - 1)
    };
    let mut shape = a.shape()[..ra - 2].to_vec();
    shape.extend([m, n]);
    let mut out = Tensor::zeros(&shape, crate::DType::F32, a.device())?;
    let p = MatmulParams {
        trans_a,
        trans_b,
        ..Default::default()
    };
    matmul(&mut out, a, b, &p)?;
    Ok(out)
}
