//! Launcher for `rope.cu`, in place like `runtime::ops::rope_fwd` / `rope_bwd`.
//! x: [tokens, heads, head_dim]; pos: [tokens] i32; cos, sin: [max_pos, head_dim/2] f32 (the
//! runtime's `rope_tables`, uploaded once).

use crate::context::{dim, mul, need, stride_blocks, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut};

/// Rotates `x` in place: forward, or the inverse rotation (`inverse`, the backward). A position
/// outside `0..max_pos` writes NaN (the runtime's CPU op errors there).
#[allow(clippy::too_many_arguments)]
pub fn rope<E: Elem>(
    gpu: &Gpu,
    x: &mut impl DevicePtrMut<E>,
    pos: &impl DevicePtr<i32>,
    cos: &impl DevicePtr<f32>,
    sin: &impl DevicePtr<f32>,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    inverse: bool,
) -> Result<()> {
    const OP: &str = "rope";
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(shape(
            OP,
            format!("head_dim {head_dim} must be even and > 0"),
        ));
    }
    let half = head_dim / 2;
    if cos.len() != sin.len() || !cos.len().is_multiple_of(half) {
        return Err(shape(
            OP,
            format!(
                "cos/sin hold {}/{} values, need [P, {half}] each",
                cos.len(),
                sin.len()
            ),
        ));
    }
    let max_pos = cos.len() / half;
    need(
        OP,
        "x",
        x.len(),
        mul(OP, mul(OP, tokens, heads)?, head_dim)?,
    )?;
    need(OP, "pos", pos.len(), tokens)?;
    let pairs = mul(OP, mul(OP, tokens, heads)?, half)?;
    let (ti, hi, di, mi) = (
        dim(OP, "tokens", tokens)?,
        dim(OP, "heads", heads)?,
        dim(OP, "head_dim", head_dim)?,
        dim(OP, "max_pos", max_pos)?,
    );
    if pairs == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr_mut(&s);
    let (pp, _g2) = pos.device_ptr(&s);
    let (cp, _g3) = cos.device_ptr(&s);
    let (sp, _g4) = sin.device_ptr(&s);
    // x is passed as both input and output: each thread reads its pair before writing it.
    gpu.launch(OP, "rope", format!("rope_{}", E::SUFFIX))?
        .ptr(xp)
        .ptr(xp)
        .ptr(pp)
        .ptr(cp)
        .ptr(sp)
        .i32(ti)
        .i32(hi)
        .i32(di)
        .i32(mi)
        .f32(if inverse { -1.0 } else { 1.0 })
        .run(stride_blocks(pairs, 256), (256, 1))
}
