//! AdamW over the model's parameters (runtime's fused `adamw_step`), global-norm gradient
//! clipping as `torch.nn.utils.clip_grad_norm_`, the LR schedule, and the optimizer state's
//! save/load for exact resume.

use std::path::Path;

use model::safetensors_io;
use model::{LlamaConfig, LlamaParams};
use runtime::{ops, AdamWParams, DType, Tensor};

use super::{Result, TrainError};
use crate::config::{GrpoConfig, LrSchedule};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWSettings {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 0 disables clipping.
    pub max_grad_norm: f64,
}

impl AdamWSettings {
    pub fn from_config(c: &GrpoConfig) -> Self {
        AdamWSettings {
            beta1: c.adam_beta1 as f32,
            beta2: c.adam_beta2 as f32,
            eps: c.adam_epsilon as f32,
            weight_decay: c.weight_decay as f32,
            max_grad_norm: c.max_grad_norm,
        }
    }
}

/// First and second moments (F32, shaped like the parameters) and the step count.
pub struct AdamW {
    pub settings: AdamWSettings,
    pub m: LlamaParams,
    pub v: LlamaParams,
    /// Optimizer steps taken so far.
    pub step: u64,
}

/// What one optimizer step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimStats {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Factor the gradients were scaled by (1 when not clipped).
    pub clip_coef: f64,
}

impl AdamW {
    pub fn new(c: &LlamaConfig, settings: AdamWSettings, device: &runtime::Device) -> Result<Self> {
        Ok(AdamW {
            settings,
            m: LlamaParams::zeros(c, DType::F32, device)?,
            v: LlamaParams::zeros(c, DType::F32, device)?,
            step: 0,
        })
    }

    /// One step at learning rate `lr` with the gradients in `grads` (left unchanged).
    pub fn step(
        &mut self,
        params: &mut LlamaParams,
        grads: &LlamaParams,
        lr: f64,
    ) -> Result<OptimStats> {
        let grad_norm = ops::global_l2_norm(&grads.tensors())?;
        if !grad_norm.is_finite() {
            return Err(TrainError::Invalid(format!("gradient norm is {grad_norm}")));
        }
        let max = self.settings.max_grad_norm;
        // torch: clip_coef = max_norm / (total_norm + 1e-6), applied only when < 1.
        let clip_coef = if max > 0.0 {
            (max / (grad_norm + 1e-6)).min(1.0)
        } else {
            1.0
        };
        self.step += 1;
        let p = AdamWParams {
            lr: lr as f32,
            beta1: self.settings.beta1,
            beta2: self.settings.beta2,
            eps: self.settings.eps,
            weight_decay: self.settings.weight_decay,
            step: self.step,
            grad_scale: clip_coef as f32,
        };
        let grads = grads.tensors();
        let (ms, vs) = (self.m.tensors_mut(), self.v.tensors_mut());
        for (((w, g), m), v) in params.tensors_mut().into_iter().zip(grads).zip(ms).zip(vs) {
            ops::adamw_step(w, g, m, v, None, &p)?;
        }
        Ok(OptimStats {
            grad_norm,
            clip_coef,
        })
    }

    /// Writes the moments to `path` (safetensors, F32, `m.<param>` / `v.<param>`).
    pub fn save(&self, c: &LlamaConfig, path: &Path) -> Result<()> {
        let mut named: Vec<(String, &Tensor)> = Vec::new();
        for (prefix, p) in [("m", &self.m), ("v", &self.v)] {
            for (n, t) in p.named(c) {
                named.push((format!("{prefix}.{n}"), t));
            }
        }
        safetensors_io::save(path, &named, DType::F32)?;
        Ok(())
    }

    /// Reads moments written by [`AdamW::save`]; every tensor must be present with its shape.
    pub fn load(c: &LlamaConfig, settings: AdamWSettings, step: u64, path: &Path) -> Result<Self> {
        let mut all = safetensors_io::read_all(path)?;
        let device = runtime::Device::Cpu;
        let mut out = AdamW::new(c, settings, &device)?;
        out.step = step;
        for (prefix, p) in [("m", &mut out.m), ("v", &mut out.v)] {
            let names: Vec<String> = p.named(c).into_iter().map(|(n, _)| n).collect();
            for (n, t) in names.iter().zip(p.tensors_mut()) {
                let key = format!("{prefix}.{n}");
                let src = all.remove(&key).ok_or_else(|| {
                    TrainError::Checkpoint(format!("{}: missing tensor {key}", path.display()))
                })?;
                if src.shape() != t.shape() || src.dtype() != DType::F32 {
                    return Err(TrainError::Checkpoint(format!(
                        "{}: {key} is {:?} {:?}, expected F32 {:?}",
                        path.display(),
                        src.dtype(),
                        src.shape(),
                        t.shape()
                    )));
                }
                *t = src.copy()?;
            }
        }
        Ok(out)
    }
}

/// Learning rate of 0-based `step`: linear warmup over `warmup_steps` (`(step+1)/warmup`), then
/// the schedule over the remaining steps.
pub fn learning_rate(c: &GrpoConfig, step: usize) -> f64 {
    let base = c.learning_rate;
    if step < c.warmup_steps {
        return base * (step + 1) as f64 / c.warmup_steps as f64;
    }
    let span = c.steps.saturating_sub(c.warmup_steps).max(1) as f64;
    let progress = ((step - c.warmup_steps) as f64 / span).min(1.0);
    match c.lr_schedule {
        LrSchedule::Constant => base,
        LrSchedule::Linear => base * (1.0 - progress),
        LrSchedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}
