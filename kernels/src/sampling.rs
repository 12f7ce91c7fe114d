//! Launcher for `sampling.cu`: one token per row from logits [rows, vocab] with the semantics of
//! `runtime::sample_token`, given the uniform draw in [0, 1) that the host's seeded RNG makes
//! for each row.

use crate::context::{dim, mul, need, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f32,
}

pub fn sample<E: Elem>(
    gpu: &Gpu,
    p: &SamplingParams,
    logits: &impl DevicePtr<E>,
    uniforms: &impl DevicePtr<f32>,
    out: &mut impl DevicePtrMut<i32>,
    rows: usize,
    vocab: usize,
) -> Result<()> {
    const OP: &str = "sample";
    if p.top_p.is_nan() || p.top_p <= 0.0 || p.top_p > 1.0 {
        return Err(shape(OP, format!("top_p {} must be in (0, 1]", p.top_p)));
    }
    if p.temperature.is_nan() || p.temperature < 0.0 {
        return Err(shape(
            OP,
            format!("temperature {} must be >= 0 (0 = greedy)", p.temperature),
        ));
    }
    need(OP, "logits", logits.len(), mul(OP, rows, vocab)?)?;
    need(OP, "uniforms", uniforms.len(), rows)?;
    need(OP, "out", out.len(), rows)?;
    let (ri, vi) = (dim(OP, "rows", rows)?, dim(OP, "vocab", vocab)?);
    let ki = dim(OP, "top_k", p.top_k)?;
    if rows == 0 {
        return Ok(());
    }
    if vocab == 0 {
        return Err(shape(OP, "vocab is 0"));
    }
    let s = gpu.stream().clone();
    let (lp, _g1) = logits.device_ptr(&s);
    let (up, _g2) = uniforms.device_ptr(&s);
    let (op, _g3) = out.device_ptr_mut(&s);
    gpu.launch(OP, "sampling", format!("sample_{}", E::SUFFIX))?
        .ptr(lp)
        .ptr(up)
        .ptr(op)
        .i32(ri)
        .i32(vi)
        .f32(p.temperature)
        .i32(ki)
        .f32(p.top_p)
        .run(rows as u32, (1024, 1))
}
