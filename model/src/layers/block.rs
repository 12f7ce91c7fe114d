//! One decoder layer: `h = x + attn(norm1(x))`, `out = h + mlp(norm2(h))`.
//!
//! The same code runs one tensor-parallel rank's shard (Megatron-LM): `tp` sums the row-parallel
//! outputs (`o_proj`, `down_proj`) in the forward and the column-parallel layers' input
//! gradients (`d ln1`, `d ln2`) in the backward; [`Alone`] makes both no-ops.

use runtime::{ops, Tensor};

use crate::activations::{LayerActs, LayerGrads};
use crate::error::Result;
use crate::layers::attention::{self, Keys};
use crate::layers::rope::Rope;
use crate::layers::{mlp, rmsnorm};
use crate::params::LayerParams;
#[cfg(doc)]
use crate::tp::Alone;
use crate::tp::Reduce;

/// Forward of one layer from `x` to `out`, keeping its activations in `a`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    w: &LayerParams,
    rope: &Rope,
    eps: f32,
    a: &mut LayerActs,
    x: &Tensor,
    out: &mut Tensor,
    pos: &Tensor,
    keys: Keys,
    tp: &mut dyn Reduce,
) -> Result<()> {
    rmsnorm::forward(&mut a.ln1, &mut a.ln1_rstd, x, &w.input_norm, eps)?;
    let owner = tp.owns_residual();
    attention::forward(w, rope, a, owner.then_some(x), pos, keys)?;
    tp.all_reduce(&mut a.resid_mid)?;
    rmsnorm::forward(
        &mut a.ln2,
        &mut a.ln2_rstd,
        &a.resid_mid,
        &w.post_attn_norm,
        eps,
    )?;
    mlp::forward(w, a, out, owner)?;
    tp.all_reduce(out)
}

/// Backward of one layer: from `d_out` (gradient of the layer output) to `d_x` (gradient of
/// its input `x`, overwritten); weight gradients accumulate into `dw`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    w: &LayerParams,
    dw: &mut LayerParams,
    rope: &Rope,
    a: &LayerActs,
    x: &Tensor,
    pos: &Tensor,
    d_out: &Tensor,
    d_x: &mut Tensor,
    g: &mut LayerGrads,
    tp: &mut dyn Reduce,
) -> Result<()> {
    // The residual path carries d_out straight to resid_mid; the MLP branch adds its part.
    mlp::backward(w, dw, a, d_out, g)?;
    // Summed before the norm's backward so the replicated norm weight's gradient is whole
    // (and equal) on every rank.
    tp.all_reduce(&mut g.d_ln)?;
    ops::copy_rows(&mut g.d_resid_mid, 0, d_out)?;
    rmsnorm::backward(
        &mut g.d_resid_mid,
        &mut dw.post_attn_norm,
        &g.d_ln,
        &a.resid_mid,
        &w.post_attn_norm,
        &a.ln2_rstd,
        true,
    )?;
    attention::backward(w, dw, rope, a, pos, g)?;
    tp.all_reduce(&mut g.d_ln)?;
    ops::copy_rows(d_x, 0, &g.d_resid_mid)?;
    rmsnorm::backward(
        d_x,
        &mut dw.input_norm,
        &g.d_ln,
        x,
        &w.input_norm,
        &a.ln1_rstd,
        true,
    )
}
