//! SwiGLU MLP: `down(silu(gate(x)) * up(x))`, added onto the residual stream.

use runtime::{ops, Tensor};

use crate::activations::{LayerActs, LayerGrads};
use crate::error::Result;
use crate::layers::linear;
use crate::params::LayerParams;

/// Reads `a.ln2`, writes `a.gate`, `a.up`, `a.act` and `out = a.resid_mid + act @ Wdown^T`
/// (without the `a.resid_mid` term unless `residual`: see [`crate::tp::Reduce`]).
pub fn forward(w: &LayerParams, a: &mut LayerActs, out: &mut Tensor, residual: bool) -> Result<()> {
    linear::forward(&mut a.gate, &a.ln2, &w.w_gate, false)?;
    linear::forward(&mut a.up, &a.ln2, &w.w_up, false)?;
    ops::swiglu_fwd(&mut a.act, &a.gate, &a.up)?;
    if residual {
        ops::copy_rows(out, 0, &a.resid_mid)?;
    }
    linear::forward(out, &a.act, &w.w_down, residual)
}

/// Given `d_out` (gradient of the layer output), accumulates the MLP weights' gradients and
/// writes the gradient of `ln2` into `g.d_ln`.
pub fn backward(
    w: &LayerParams,
    dw: &mut LayerParams,
    a: &LayerActs,
    d_out: &Tensor,
    g: &mut LayerGrads,
) -> Result<()> {
    linear::backward(
        Some(&mut g.d_act),
        &mut dw.w_down,
        d_out,
        &a.act,
        &w.w_down,
        false,
    )?;
    ops::swiglu_bwd(&mut g.d_gate, &mut g.d_up, &g.d_act, &a.gate, &a.up)?;
    linear::backward(
        Some(&mut g.d_ln),
        &mut dw.w_gate,
        &g.d_gate,
        &a.ln2,
        &w.w_gate,
        false,
    )?;
    linear::backward(
        Some(&mut g.d_ln),
        &mut dw.w_up,
        &g.d_up,
        &a.ln2,
        &w.w_up,
        true,
    )
}
