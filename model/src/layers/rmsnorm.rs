//! RMSNorm (HF `LlamaRMSNorm`): `y = w * x / sqrt(mean(x^2) + eps)`; `rstd` is saved per row.

use runtime::{ops, Tensor};

use crate::error::Result;

pub fn forward(
    out: &mut Tensor,
    rstd: &mut Tensor,
    x: &Tensor,
    w: &Tensor,
    eps: f32,
) -> Result<()> {
    Ok(ops::rmsnorm_fwd(out, rstd, x, w, eps)?)
}

/// `dw += ...`; `dx` is overwritten, or accumulated onto (the residual stream's gradient)
/// when `accumulate_dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dx: &mut Tensor,
    dw: &mut Tensor,
    dout: &Tensor,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    accumulate_dx: bool,
) -> Result<()> {
    Ok(ops::rmsnorm_bwd(dx, dw, dout, x, w, rstd, accumulate_dx)?)
}
