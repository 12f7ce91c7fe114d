//! AdamW over the model's parameters (runtime's fused `adamw_step`), global-norm gradient
//! clipping, the warmup + cosine/constant learning-rate schedule, and the state's save/load
//! for exact resume.

use std::path::Path;

use runtime::{ops, AdamWParams, DType};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::model::Llama;
use crate::params::LlamaParams;
use crate::safetensors_io;

/// Learning-rate shape after warmup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Cosine decay from the peak to `min_ratio * lr` at `total_steps`.
    Cosine {
        total_steps: u64,
        min_ratio: f32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay, applied to matrices only (not norms), as HF Trainer does.
    pub weight_decay: f32,
    /// Linear warmup from 0 over this many steps.
    pub warmup_steps: u64,
    pub schedule: Schedule,
    /// Clip the global gradient L2 norm to this value (`None`: no clipping).
    pub max_grad_norm: Option<f32>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            schedule: Schedule::Constant,
            max_grad_norm: Some(1.0),
        }
    }
}

impl OptimConfig {
    /// Learning rate of 0-based step `step` (HF `get_cosine_schedule_with_warmup` /
    /// `get_constant_schedule_with_warmup`).
    pub fn lr_at(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            return self.lr * step as f32 / self.warmup_steps.max(1) as f32;
        }
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine {
                total_steps,
                min_ratio,
            } => {
                let span = total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.lr * (min_ratio + (1.0 - min_ratio) * cos as f32)
            }
        }
    }
}

/// What one optimizer step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub lr: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// The factor gradients were scaled by (1 without clipping).
    pub clip_scale: f32,
}

/// AdamW state: first/second moments, and f32 master weights when the model computes in
/// a lower precision (the model's weights are then the rounded copy).
pub struct AdamW {
    pub config: OptimConfig,
    pub m: LlamaParams,
    pub v: LlamaParams,
    pub master: Option<LlamaParams>,
    /// Steps taken so far.
    pub step: u64,
}

impl AdamW {
    pub fn new(model: &Llama, config: OptimConfig) -> Result<Self> {
        let z = || LlamaParams::zeros(&model.config, DType::F32, &model.device);
        let master = if model.params.embed.dtype() == DType::F32 {
            None
        } else {
            let mut p = model.params.clone();
            for t in p.tensors_mut() {
                *t = t.cast(DType::F32)?;
            }
            Some(p)
        };
        Ok(AdamW {
            config,
            m: z()?,
            v: z()?,
            master,
            step: 0,
        })
    }

    /// Clips, then updates `model`'s parameters from `grads` (F32, e.g. accumulated over
    /// micro-batches with the right loss scale).
    pub fn step(&mut self, model: &mut Llama, grads: &LlamaParams) -> Result<StepStats> {
        let lr = self.config.lr_at(self.step);
        self.step_with_lr(model, grads, lr)
    }

    /// [`AdamW::step`] at learning rate `lr` instead of the schedule's: for callers that
    /// schedule per outer step (GRPO takes several optimizer steps per step at one rate).
    pub fn step_with_lr(
        &mut self,
        model: &mut Llama,
        grads: &LlamaParams,
        lr: f32,
    ) -> Result<StepStats> {
        let grad_norm = ops::global_l2_norm(&grads.tensors())?;
        self.step_with_norm(model, grads, lr, grad_norm)
    }

    /// This state with `f` applied to each of its moment (and master weight) sets, e.g. to
    /// slice a whole model's state into a tensor-parallel shard or gather it back.
    pub fn map_state<E>(
        &self,
        mut f: impl FnMut(&LlamaParams) -> std::result::Result<LlamaParams, E>,
    ) -> std::result::Result<AdamW, E> {
        Ok(AdamW {
            config: self.config,
            m: f(&self.m)?,
            v: f(&self.v)?,
            master: self.master.as_ref().map(&mut f).transpose()?,
            step: self.step,
        })
    }

    /// Counts one step and returns its hyper-parameters at `lr`, with `grad_scale` the factor
    /// that clips a gradient of norm `grad_norm` to `max_grad_norm` (1 when within it).
    pub fn next_step(&mut self, lr: f32, grad_norm: f64) -> AdamWParams {
        let c = self.config;
        let clip_scale = match c.max_grad_norm {
            Some(max) if grad_norm > max as f64 => (max as f64 / (grad_norm + 1e-6)) as f32,
            _ => 1.0,
        };
        self.step += 1;
        AdamWParams {
            lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            step: self.step,
            grad_scale: clip_scale,
        }
    }

    /// [`AdamW::step_with_lr`] given the global gradient norm: under tensor parallelism each
    /// rank steps its shard and clips by the whole model's norm
    /// ([`TpModel::grad_norm`](crate::tp::TpModel::grad_norm)).
    pub fn step_with_norm(
        &mut self,
        model: &mut Llama,
        grads: &LlamaParams,
        lr: f32,
        grad_norm: f64,
    ) -> Result<StepStats> {
        let c = self.config;
        let gs = grads.tensors();
        if !grad_norm.is_finite() {
            return Err(ModelError::Invalid(format!(
                "gradient norm is {grad_norm}; refusing to step"
            )));
        }
        let mut p = self.next_step(lr, grad_norm);
        let clip_scale = p.grad_scale;
        let ms = self.m.tensors_mut();
        let vs = self.v.tensors_mut();
        let model_ts = model.params.tensors_mut();
        match self.master.as_mut() {
            None => {
                for (((w, g), m), v) in model_ts.into_iter().zip(gs).zip(ms).zip(vs) {
                    p.weight_decay = if w.rank() >= 2 { c.weight_decay } else { 0.0 };
                    ops::adamw_step(w, g, m, v, None, &p)?;
                }
            }
            Some(master) => {
                let all = model_ts
                    .into_iter()
                    .zip(master.tensors_mut())
                    .zip(gs)
                    .zip(ms)
                    .zip(vs);
                for ((((copy, w), g), m), v) in all {
                    p.weight_decay = if w.rank() >= 2 { c.weight_decay } else { 0.0 };
                    ops::adamw_step(w, g, m, v, Some(copy), &p)?;
                }
            }
        }
        Ok(StepStats {
            lr,
            grad_norm,
            clip_scale,
        })
    }

    /// The tensors of the state under their file names: `m.<param>`, `v.<param>` and, when
    /// master weights are kept, `master.<param>`.
    fn parts_mut(&mut self) -> Vec<(&'static str, &mut LlamaParams)> {
        let mut parts = vec![("m", &mut self.m), ("v", &mut self.v)];
        if let Some(master) = self.master.as_mut() {
            parts.push(("master", master));
        }
        parts
    }

    /// Writes the moments (and master weights, when kept) to `path` as F32 safetensors,
    /// atomically. The step count is the caller's to store (e.g. in its trainer state).
    pub fn save_state(&self, config: &LlamaConfig, path: &Path) -> Result<()> {
        let mut parts = vec![("m", &self.m), ("v", &self.v)];
        if let Some(master) = &self.master {
            parts.push(("master", master));
        }
        let mut named: Vec<(String, &runtime::Tensor)> = Vec::new();
        for (prefix, p) in parts {
            for (n, t) in p.named(config) {
                named.push((format!("{prefix}.{n}"), t));
            }
        }
        safetensors_io::save(path, &named, DType::F32)
    }

    /// Replaces the state with what [`AdamW::save_state`] wrote to `path`, `step` steps in.
    /// Every tensor must be present, F32, with its parameter's shape.
    pub fn load_state(&mut self, model: &Llama, path: &Path, step: u64) -> Result<()> {
        let mut all = safetensors_io::read_all(path)?;
        let (config, device) = (&model.config, &model.device);
        for (prefix, p) in self.parts_mut() {
            let names: Vec<String> = p.named(config).into_iter().map(|(n, _)| n).collect();
            for (n, t) in names.iter().zip(p.tensors_mut()) {
                let name = format!("{prefix}.{n}");
                let src = all.remove(&name).ok_or_else(|| ModelError::MissingTensor {
                    name: name.clone(),
                    file: path.to_path_buf(),
                })?;
                if src.shape() != t.shape() {
                    return Err(ModelError::ShapeMismatch {
                        name,
                        file: path.to_path_buf(),
                        expected: t.shape().to_vec(),
                        found: src.shape().to_vec(),
                    });
                }
                if src.dtype() != DType::F32 {
                    return Err(ModelError::Invalid(format!(
                        "{}: optimizer tensor `{name}` is {:?}, expected F32",
                        path.display(),
                        src.dtype()
                    )));
                }
                *t = src.copy()?.to_device(device)?;
            }
        }
        if let Some(extra) = all.keys().next() {
            return Err(ModelError::Invalid(format!(
                "{}: unexpected optimizer tensor `{extra}` (master weights saved for a \
                 different precision?)",
                path.display()
            )));
        }
        self.step = step;
        Ok(())
    }
}
