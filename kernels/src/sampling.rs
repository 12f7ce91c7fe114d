//! Launcher for `sampling.cu`: one token per row from logits [rows, vocab], given one uniform
//! draw in [0, 1) per row from the host's seeded RNG.

use crate::context::{cfg, dim, drv, mul, need, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut, PushKernelArg};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// <= 0 means greedy.
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
    if p.temperature.is_nan() {
        return Err(shape(OP, "temperature is NaN"));
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
    let f = gpu.function("sampling", &format!("sample_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (lp, _g1) = logits.device_ptr(s);
    let (up, _g2) = uniforms.device_ptr(s);
    let (op, _g3) = out.device_ptr_mut(s);
    let mut b = s.launch_builder(&f);
    b.arg(&lp)
        .arg(&up)
        .arg(&op)
        .arg(&ri)
        .arg(&vi)
        .arg(&p.temperature)
        .arg(&ki)
        .arg(&p.top_p);
    // SAFETY: matches sample_* in sampling.cu; lengths checked above.
    unsafe { b.launch(cfg(rows as u32, (1024, 1))) }.map_err(drv(OP))?;
    Ok(())
}
