//! Launchers for `cross_entropy.cu`: fused log-softmax + per-token log-prob over one chunk of
//! rows. logits/dlogits: [rows, vocab]; targets: [rows] i32; logprob, lse, g: [rows] f32.
//! Cross-entropy is `-logprob` (the caller passes g = -1/n_valid for a mean loss).

use crate::context::{cfg, dim, drv, mul, need, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut, PushKernelArg};

/// What the rows are scored with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogprobSpec {
    pub rows: usize,
    pub vocab: usize,
    /// Rows whose target equals this get logprob 0 and zero gradient.
    pub ignore_index: i32,
    /// Logits are divided by this before the softmax (1.0 for plain cross-entropy).
    pub temperature: f32,
}

impl LogprobSpec {
    fn check(&self, op: &'static str) -> Result<(i32, i32, f32)> {
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(shape(
                op,
                format!("temperature {} must be > 0", self.temperature),
            ));
        }
        Ok((
            dim(op, "rows", self.rows)?,
            dim(op, "vocab", self.vocab)?,
            1.0 / self.temperature,
        ))
    }
}

/// logprob[r] = log_softmax(logits[r] / T)[targets[r]], lse[r] saved for the backward.
pub fn cross_entropy_fwd<E: Elem>(
    gpu: &Gpu,
    spec: &LogprobSpec,
    logits: &impl DevicePtr<E>,
    targets: &impl DevicePtr<i32>,
    logprob: &mut impl DevicePtrMut<f32>,
    lse: &mut impl DevicePtrMut<f32>,
) -> Result<()> {
    const OP: &str = "cross_entropy_fwd";
    let (ri, vi, inv_t) = spec.check(OP)?;
    need(OP, "logits", logits.len(), mul(OP, spec.rows, spec.vocab)?)?;
    need(OP, "targets", targets.len(), spec.rows)?;
    need(OP, "logprob", logprob.len(), spec.rows)?;
    need(OP, "lse", lse.len(), spec.rows)?;
    if spec.rows == 0 {
        return Ok(());
    }
    if spec.vocab == 0 {
        return Err(shape(OP, "vocab is 0"));
    }
    let f = gpu.function("cross_entropy", &format!("cross_entropy_fwd_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (lp, _g1) = logits.device_ptr(s);
    let (tp, _g2) = targets.device_ptr(s);
    let (op, _g3) = logprob.device_ptr_mut(s);
    let (sp, _g4) = lse.device_ptr_mut(s);
    let mut b = s.launch_builder(&f);
    b.arg(&lp)
        .arg(&tp)
        .arg(&op)
        .arg(&sp)
        .arg(&ri)
        .arg(&vi)
        .arg(&spec.ignore_index)
        .arg(&inv_t);
    // SAFETY: matches cross_entropy_fwd_* in cross_entropy.cu; lengths checked above.
    unsafe { b.launch(cfg(spec.rows as u32, (1024, 1))) }.map_err(drv(OP))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn bwd<E: Elem>(
    gpu: &Gpu,
    spec: &LogprobSpec,
    lp: u64,
    dp: u64,
    targets: &impl DevicePtr<i32>,
    lse: &impl DevicePtr<f32>,
    g: &impl DevicePtr<f32>,
) -> Result<()> {
    const OP: &str = "cross_entropy_bwd";
    let (ri, vi, inv_t) = spec.check(OP)?;
    need(OP, "targets", targets.len(), spec.rows)?;
    need(OP, "lse", lse.len(), spec.rows)?;
    need(OP, "g", g.len(), spec.rows)?;
    if spec.rows == 0 || spec.vocab == 0 {
        return Ok(());
    }
    let f = gpu.function("cross_entropy", &format!("cross_entropy_bwd_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (tp, _g1) = targets.device_ptr(s);
    let (sp, _g2) = lse.device_ptr(s);
    let (gp, _g3) = g.device_ptr(s);
    let mut b = s.launch_builder(&f);
    b.arg(&lp)
        .arg(&tp)
        .arg(&sp)
        .arg(&gp)
        .arg(&dp)
        .arg(&ri)
        .arg(&vi)
        .arg(&spec.ignore_index)
        .arg(&inv_t);
    // SAFETY: matches cross_entropy_bwd_* in cross_entropy.cu; lengths checked by the callers.
    unsafe { b.launch(cfg(spec.rows as u32, (1024, 1))) }.map_err(drv(OP))?;
    Ok(())
}

/// dlogits[r, j] = g[r] / T * ([j == target] - softmax_j), zero on ignored rows.
pub fn cross_entropy_bwd<E: Elem>(
    gpu: &Gpu,
    spec: &LogprobSpec,
    logits: &impl DevicePtr<E>,
    targets: &impl DevicePtr<i32>,
    lse: &impl DevicePtr<f32>,
    g: &impl DevicePtr<f32>,
    dlogits: &mut impl DevicePtrMut<E>,
) -> Result<()> {
    let n = mul("cross_entropy_bwd", spec.rows, spec.vocab)?;
    need("cross_entropy_bwd", "logits", logits.len(), n)?;
    need("cross_entropy_bwd", "dlogits", dlogits.len(), n)?;
    let s = gpu.stream().clone();
    let (lp, _g1) = logits.device_ptr(&s);
    let (dp, _g2) = dlogits.device_ptr_mut(&s);
    bwd::<E>(gpu, spec, lp, dp, targets, lse, g)
}

/// The backward written over the logits chunk itself (no second chunk-sized buffer).
pub fn cross_entropy_bwd_inplace<E: Elem>(
    gpu: &Gpu,
    spec: &LogprobSpec,
    logits: &mut impl DevicePtrMut<E>,
    targets: &impl DevicePtr<i32>,
    lse: &impl DevicePtr<f32>,
    g: &impl DevicePtr<f32>,
) -> Result<()> {
    let n = mul("cross_entropy_bwd", spec.rows, spec.vocab)?;
    need("cross_entropy_bwd", "logits", logits.len(), n)?;
    let s = gpu.stream().clone();
    let (lp, _g1) = logits.device_ptr_mut(&s);
    bwd::<E>(gpu, spec, lp, lp, targets, lse, g)
}
