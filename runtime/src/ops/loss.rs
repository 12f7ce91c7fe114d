//! Softmax, per-token log-probs and cross-entropy (fused with log-softmax; no [N, V] probs kept).

use super::{check_f32, check_float, check_index, check_shape, dispatch};
use crate::backend::LogprobRows;
use crate::{Error, Result, Tensor};

fn rows(op: &'static str, logits: &Tensor, targets: &Tensor) -> Result<usize> {
    check_float(op, "logits", logits)?;
    check_index(op, "targets", targets)?;
    if logits.rank() < 1 || logits.shape()[..logits.rank() - 1] != *targets.shape() {
        return Err(Error::Shape {
            op,
            msg: format!(
                "logits {:?} must be targets {:?} plus a vocab dim",
                logits.shape(),
                targets.shape()
            ),
        });
    }
    Ok(targets.numel())
}

fn per_row(op: &'static str, name: &str, t: &Tensor, n: usize) -> Result<()> {
    check_f32(op, name, t)?;
    if t.numel() != n {
        return Err(Error::Shape {
            op,
            msg: format!(
                "`{name}` {:?} must have {n} elements (one per row)",
                t.shape()
            ),
        });
    }
    Ok(())
}

fn check_temp(op: &'static str, temperature: f32) -> Result<()> {
    if temperature > 0.0 && temperature.is_finite() {
        Ok(())
    } else {
        crate::error::invalid(op, format!("temperature {temperature} must be > 0"))
    }
}

/// Per-token log-probability of given targets under `softmax(logits / temperature)`:
/// `logp[n] = logits[n, t_n]/T - lse[n]`, `lse[n] = logsumexp_v(logits[n, v]/T)`.
///
/// `logits`: `[..., V]` float (N rows); `targets`: `[...]` index; `logp`, `lse`: F32 with N
/// elements, overwritten (`lse` is saved for the backward). Rows whose target equals
/// `ignore_index` get `logp = 0`; other targets outside `0..V` are an error.
pub fn token_logprobs_fwd(
    logp: &mut Tensor,
    lse: &mut Tensor,
    logits: &Tensor,
    targets: &Tensor,
    temperature: f32,
    ignore_index: Option<i64>,
) -> Result<()> {
    const OP: &str = "token_logprobs_fwd";
    let n = rows(OP, logits, targets)?;
    per_row(OP, "logp", logp, n)?;
    per_row(OP, "lse", lse, n)?;
    check_temp(OP, temperature)?;
    let r = LogprobRows::new(logits, targets, temperature, ignore_index);
    dispatch(OP, &[logp, lse, logits, targets])?.logprobs_fwd(logp, lse, &r)
}

/// Backward of [`token_logprobs_fwd`]: `dlogits[n, v] = dlogp[n] * (onehot(t_n)[v] - p[n, v]) / T`
/// with `p = softmax(logits / T)`; ignored rows get zeros. `dlogits` like `logits`, overwritten;
/// `dlogp`: F32 with N elements.
#[allow(clippy::too_many_arguments)]
pub fn token_logprobs_bwd(
    dlogits: &mut Tensor,
    dlogp: &Tensor,
    logits: &Tensor,
    lse: &Tensor,
    targets: &Tensor,
    temperature: f32,
    ignore_index: Option<i64>,
) -> Result<()> {
    const OP: &str = "token_logprobs_bwd";
    let n = rows(OP, logits, targets)?;
    per_row(OP, "dlogp", dlogp, n)?;
    per_row(OP, "lse", lse, n)?;
    check_float(OP, "dlogits", dlogits)?;
    check_shape(OP, "dlogits", dlogits, logits.shape())?;
    check_temp(OP, temperature)?;
    let r = LogprobRows::new(logits, targets, temperature, ignore_index);
    dispatch(OP, &[dlogits, dlogp, logits, lse, targets])?.logprobs_bwd(
        dlogits,
        Some(dlogp),
        1.0,
        lse,
        &r,
    )
}

/// Result of [`cross_entropy_fwd`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyStats {
    /// Mean loss over non-ignored rows (0 when every row is ignored).
    pub mean: f64,
    /// Number of non-ignored rows.
    pub count: usize,
}

/// Fused log-softmax + cross-entropy: `losses[n] = lse[n] - logits[n, t_n]` (0 for rows whose
/// target is `ignore_index`, e.g. -100). Layouts as in [`token_logprobs_fwd`] with T = 1;
/// `losses` and `lse` overwritten. Returns the mean over non-ignored rows and their count.
pub fn cross_entropy_fwd(
    losses: &mut Tensor,
    lse: &mut Tensor,
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
) -> Result<CrossEntropyStats> {
    const OP: &str = "cross_entropy_fwd";
    let n = rows(OP, logits, targets)?;
    per_row(OP, "losses", losses, n)?;
    per_row(OP, "lse", lse, n)?;
    let be = dispatch(OP, &[losses, lse, logits, targets])?;
    be.logprobs_fwd(losses, lse, &LogprobRows::ce(logits, targets, ignore_index))?;
    be.scale_inplace(losses, -1.0)?;
    let count = targets
        .to_vec::<i64>()?
        .iter()
        .filter(|&&t| t != ignore_index)
        .count();
    let total = be.sum(losses)?;
    Ok(CrossEntropyStats {
        mean: if count == 0 {
            0.0
        } else {
            total / count as f64
        },
        count,
    })
}

/// Backward of [`cross_entropy_fwd`]: `dlogits[n] = scale * g[n] * (softmax(logits[n]) - onehot(t_n))`
/// with `g = dlosses` (F32, N elements) or 1 when `None`; ignored rows get zeros. For the mean
/// loss pass `scale = 1 / count`. `dlogits` like `logits`, overwritten.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_bwd(
    dlogits: &mut Tensor,
    logits: &Tensor,
    lse: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
    scale: f32,
    dlosses: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "cross_entropy_bwd";
    let n = rows(OP, logits, targets)?;
    per_row(OP, "lse", lse, n)?;
    if let Some(d) = dlosses {
        per_row(OP, "dlosses", d, n)?;
    }
    check_float(OP, "dlogits", dlogits)?;
    check_shape(OP, "dlogits", dlogits, logits.shape())?;
    let r = LogprobRows::ce(logits, targets, ignore_index);
    dispatch(OP, &[dlogits, logits, lse, targets])?.logprobs_bwd(dlogits, dlosses, -scale, lse, &r)
}

/// Softmax over the last dim of `x / temperature`; `out` like `x` (float), overwritten.
pub fn softmax(out: &mut Tensor, x: &Tensor, temperature: f32) -> Result<()> {
    const OP: &str = "softmax";
    check_float(OP, "x", x)?;
    check_float(OP, "out", out)?;
    check_shape(OP, "out", out, x.shape())?;
    check_temp(OP, temperature)?;
    if x.rank() == 0 {
        return Err(Error::Shape {
            op: OP,
            msg: "scalar input, expected [..., V]".into(),
        });
    }
    dispatch(OP, &[out, x])?.softmax(out, x, temperature)
}
