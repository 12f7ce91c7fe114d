//! Launchers for `logprobs.cu`: fused log-softmax + per-token log-probs over one chunk of rows
//! (`runtime::ops::token_logprobs_*`, and cross-entropy as `-logp`), and softmax.
//! logits/dlogits: [rows, vocab]; targets: [rows] i32; logp, lse, dlogp: [rows] f32.

use crate::context::{dim, mul, need, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut};

/// What the rows are scored with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogprobSpec {
    pub rows: usize,
    pub vocab: usize,
    /// Rows whose target equals this get logp 0 and zero gradient.
    pub ignore_index: Option<i64>,
    /// Logits are divided by this before the softmax (1.0 for plain cross-entropy).
    pub temperature: f32,
}

impl LogprobSpec {
    fn check(&self, op: &'static str) -> Result<(i32, i32, f32, i64, i32)> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(shape(
                op,
                format!("temperature {} must be > 0", self.temperature),
            ));
        }
        if self.rows > 0 && self.vocab == 0 {
            return Err(shape(op, "vocab is 0"));
        }
        Ok((
            dim(op, "rows", self.rows)?,
            dim(op, "vocab", self.vocab)?,
            1.0 / self.temperature,
            self.ignore_index.unwrap_or(0),
            self.ignore_index.is_some() as i32,
        ))
    }
}

/// logp[r] = log_softmax(logits[r] / T)[targets[r]]; lse[r] saved for the backward.
pub fn logprobs_fwd<E: Elem>(
    gpu: &Gpu,
    spec: &LogprobSpec,
    logits: &impl DevicePtr<E>,
    targets: &impl DevicePtr<i32>,
    logp: &mut impl DevicePtrMut<f32>,
    lse: &mut impl DevicePtrMut<f32>,
) -> Result<()> {
    const OP: &str = "logprobs_fwd";
    let (ri, vi, inv_t, ign, has_ign) = spec.check(OP)?;
    need(OP, "logits", logits.len(), mul(OP, spec.rows, spec.vocab)?)?;
    need(OP, "targets", targets.len(), spec.rows)?;
    need(OP, "logp", logp.len(), spec.rows)?;
    need(OP, "lse", lse.len(), spec.rows)?;
    if spec.rows == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (lp, _g1) = logits.device_ptr(&s);
    let (tp, _g2) = targets.device_ptr(&s);
    let (op, _g3) = logp.device_ptr_mut(&s);
    let (sp, _g4) = lse.device_ptr_mut(&s);
    gpu.launch(OP, "logprobs", format!("logprobs_fwd_{}", E::SUFFIX))?
        .ptr(lp)
        .ptr(tp)
        .ptr(op)
        .ptr(sp)
        .i32(ri)
        .i32(vi)
        .i64(ign)
        .i32(has_ign)
        .f32(inv_t)
        .run(spec.rows as u32, (1024, 1))
}

#[allow(clippy::too_many_arguments)]
fn bwd<E: Elem>(
    gpu: &Gpu,
    spec: &LogprobSpec,
    lp: u64,
    dp: u64,
    targets: &impl DevicePtr<i32>,
    lse: &impl DevicePtr<f32>,
    dlogp: Option<&dyn DevicePtr<f32>>,
    scale: f32,
) -> Result<()> {
    const OP: &str = "logprobs_bwd";
    let (ri, vi, inv_t, ign, has_ign) = spec.check(OP)?;
    need(OP, "targets", targets.len(), spec.rows)?;
    need(OP, "lse", lse.len(), spec.rows)?;
    if let Some(g) = dlogp {
        need(OP, "dlogp", g.len(), spec.rows)?;
    }
    if spec.rows == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (tp, _g1) = targets.device_ptr(&s);
    let (sp, _g2) = lse.device_ptr(&s);
    let (gp, _g3) = match dlogp {
        Some(g) => {
            let (p, guard) = g.device_ptr(&s);
            (p, Some(guard))
        }
        None => (0u64, None),
    };
    gpu.launch(OP, "logprobs", format!("logprobs_bwd_{}", E::SUFFIX))?
        .ptr(lp)
        .ptr(tp)
        .ptr(sp)
        .ptr(gp)
        .f32(scale)
        .ptr(dp)
        .i32(ri)
        .i32(vi)
        .i64(ign)
        .i32(has_ign)
        .f32(inv_t)
        .run(spec.rows as u32, (1024, 1))
}

/// dlogits[r, j] = scale * g[r] / T * ([j == target] - softmax_j), g = dlogp or 1 when None;
/// zero on ignored rows. Cross-entropy's backward is `scale = -1/count`.
#[allow(clippy::too_many_arguments)]
pub fn logprobs_bwd<E: Elem>(
    gpu: &Gpu,
    spec: &LogprobSpec,
    logits: &impl DevicePtr<E>,
    targets: &impl DevicePtr<i32>,
    lse: &impl DevicePtr<f32>,
    dlogp: Option<&dyn DevicePtr<f32>>,
    scale: f32,
    dlogits: &mut impl DevicePtrMut<E>,
) -> Result<()> {
    let n = mul("logprobs_bwd", spec.rows, spec.vocab)?;
    need("logprobs_bwd", "logits", logits.len(), n)?;
    need("logprobs_bwd", "dlogits", dlogits.len(), n)?;
    let s = gpu.stream().clone();
    let (lp, _g1) = logits.device_ptr(&s);
    let (dp, _g2) = dlogits.device_ptr_mut(&s);
    bwd::<E>(gpu, spec, lp, dp, targets, lse, dlogp, scale)
}

/// The backward written over the logits chunk itself (no second chunk-sized buffer).
pub fn logprobs_bwd_inplace<E: Elem>(
    gpu: &Gpu,
    spec: &LogprobSpec,
    logits: &mut impl DevicePtrMut<E>,
    targets: &impl DevicePtr<i32>,
    lse: &impl DevicePtr<f32>,
    dlogp: Option<&dyn DevicePtr<f32>>,
    scale: f32,
) -> Result<()> {
    let n = mul("logprobs_bwd", spec.rows, spec.vocab)?;
    need("logprobs_bwd", "logits", logits.len(), n)?;
    let s = gpu.stream().clone();
    let (lp, _g1) = logits.device_ptr_mut(&s);
    bwd::<E>(gpu, spec, lp, lp, targets, lse, dlogp, scale)
}

/// out[r] = softmax(x[r] / temperature) over the last dim.
pub fn softmax<E: Elem>(
    gpu: &Gpu,
    x: &impl DevicePtr<E>,
    out: &mut impl DevicePtrMut<E>,
    rows: usize,
    vocab: usize,
    temperature: f32,
) -> Result<()> {
    const OP: &str = "softmax";
    let spec = LogprobSpec {
        rows,
        vocab,
        ignore_index: None,
        temperature,
    };
    let (ri, vi, inv_t, _, _) = spec.check(OP)?;
    let n = mul(OP, rows, vocab)?;
    need(OP, "x", x.len(), n)?;
    need(OP, "out", out.len(), n)?;
    if rows == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr(&s);
    let (op, _g2) = out.device_ptr_mut(&s);
    gpu.launch(OP, "logprobs", format!("softmax_{}", E::SUFFIX))?
        .ptr(xp)
        .ptr(op)
        .i32(ri)
        .i32(vi)
        .f32(inv_t)
        .run(rows as u32, (1024, 1))
}
