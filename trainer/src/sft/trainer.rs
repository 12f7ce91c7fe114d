//! The SFT loop: micro-batches -> forward, masked next-token loss, backward (accumulated over
//! `grad_accum` micro-batches as one big batch) -> global-norm clipping -> AdamW.

use std::time::Instant;

use model::layers::lm_head::shifted_targets;
use model::optim::{AdamW, OptimConfig, Schedule};
use model::{Activations, GradBuffers, Llama, LlamaParams};
use runtime::Rng;

use super::batch::{make_batches, Batch, Packing};
use super::data::Example;
use super::error::{Result, SftError};

/// Everything that shapes a run.
#[derive(Clone, Debug)]
pub struct SftConfig {
    /// AdamW, clipping and LR schedule. A cosine schedule with `total_steps: 0` spans the
    /// whole [`Trainer::fit`] run.
    pub optim: OptimConfig,
    /// Rows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    pub max_seq_len: usize,
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides `epochs`).
    pub max_steps: Option<usize>,
    pub seed: u64,
    /// Recompute each layer's activations in the backward instead of keeping them.
    pub recompute: bool,
    pub packing: Packing,
    /// Padded batch lengths are rounded up to a multiple of this.
    pub pad_multiple: usize,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            optim: OptimConfig {
                lr: 2e-5,
                schedule: Schedule::Cosine {
                    total_steps: 0,
                    min_ratio: 0.0,
                },
                ..OptimConfig::default()
            },
            batch_size: 8,
            grad_accum: 1,
            max_seq_len: 1024,
            epochs: 1,
            max_steps: None,
            seed: 0,
            recompute: false,
            packing: Packing::Pad,
            pad_multiple: 16,
        }
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepStats {
    /// 1-based optimizer step.
    pub step: usize,
    /// Mean loss over the step's target tokens.
    pub loss: f64,
    pub lr: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Non-padding tokens processed.
    pub tokens: usize,
    pub target_tokens: usize,
    pub seconds: f64,
    pub tokens_per_s: f64,
}

/// How a [`Trainer::fit`] went.
#[derive(Clone, Debug)]
pub struct FitSummary {
    pub steps: usize,
    pub first_loss: f64,
    pub last_loss: f64,
    /// Examples cut to `max_seq_len`, and those left with nothing to train on.
    pub truncated: usize,
    pub dropped: usize,
}

/// Buffers for one `[batch, seq]` shape, kept while the shape repeats.
struct StepBuffers {
    batch: usize,
    seq: usize,
    acts: Activations,
    scratch: GradBuffers,
}

pub struct Trainer {
    model: Llama,
    cfg: SftConfig,
    opt: AdamW,
    grads: LlamaParams,
    bufs: Option<StepBuffers>,
    steps: usize,
}

impl Trainer {
    pub fn new(model: Llama, cfg: SftConfig) -> Result<Self> {
        if cfg.batch_size == 0 || cfg.grad_accum == 0 || cfg.max_seq_len == 0 {
            return Err(SftError::Invalid(format!(
                "batch size ({}), gradient accumulation ({}) and max sequence length ({}) must be positive",
                cfg.batch_size, cfg.grad_accum, cfg.max_seq_len
            )));
        }
        if !(cfg.optim.lr.is_finite() && cfg.optim.lr >= 0.0) {
            return Err(SftError::Invalid(format!("learning rate {}", cfg.optim.lr)));
        }
        if cfg.max_steps == Some(0) || (cfg.max_steps.is_none() && cfg.epochs == 0) {
            return Err(SftError::Invalid(
                "nothing to do: need at least one epoch or step".into(),
            ));
        }
        let limit = model.config.max_position_embeddings;
        if cfg.max_seq_len > limit {
            return Err(SftError::Invalid(format!(
                "max sequence length {} exceeds the model's max_position_embeddings {limit}",
                cfg.max_seq_len
            )));
        }
        let opt = AdamW::new(&model, cfg.optim)?;
        let grads = model.zero_grads()?;
        Ok(Trainer {
            model,
            cfg,
            opt,
            grads,
            bufs: None,
            steps: 0,
        })
    }

    pub fn model(&self) -> &Llama {
        &self.model
    }

    pub fn into_model(self) -> Llama {
        self.model
    }

    pub fn config(&self) -> &SftConfig {
        &self.cfg
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    fn buffers(&mut self, batch: usize, seq: usize) -> Result<&mut StepBuffers> {
        let fits = matches!(&self.bufs, Some(b) if b.batch == batch && b.seq == seq);
        if !fits {
            // Free the old shape first so two sets never coexist.
            self.bufs = None;
            let (c, d) = (&self.model.config, &self.model.device);
            self.bufs = Some(StepBuffers {
                batch,
                seq,
                acts: Activations::new(c, batch, seq, self.cfg.recompute, d)?,
                scratch: GradBuffers::new(c, batch, seq, d)?,
            });
        }
        Ok(self.bufs.as_mut().expect("allocated above"))
    }

    /// Accumulates the gradient of the mean loss over all `micro` batches' targets (each
    /// micro-batch's backward is scaled by `1 / total targets`, so the sum equals one big
    /// batch); returns (mean loss, target count). Gradients are **added** to `self.grads`.
    pub fn accumulate(&mut self, micro: &[Batch]) -> Result<(f64, usize)> {
        let total: usize = micro.iter().map(Batch::target_count).sum();
        if total == 0 {
            return Err(SftError::Invalid(
                "a step's batches hold no target tokens".into(),
            ));
        }
        let mut loss_sum = 0.0;
        for b in micro {
            if b.target_count() == 0 {
                continue;
            }
            let (rows, seq) = (b.rows.len(), b.seq);
            let ids = self.model.ids_tensor(&b.rows)?;
            let targets = shifted_targets(&b.flat_ids(), rows, seq, Some(&b.mask))?
                .to_device(&self.model.device)?;
            // Take the buffers out so the model and gradients can be borrowed beside them.
            self.buffers(rows, seq)?;
            let mut bufs = self.bufs.take().expect("allocated by buffers()");
            let run = (|| -> Result<f64> {
                self.model.forward(&ids, &mut bufs.acts)?;
                let stats = self.model.loss(&mut bufs.acts, &targets)?;
                self.model.backward(
                    &ids,
                    &targets,
                    &mut bufs.acts,
                    &mut self.grads,
                    &mut bufs.scratch,
                    1.0 / total as f32,
                )?;
                Ok(stats.mean * stats.count as f64)
            })();
            self.bufs = Some(bufs);
            loss_sum += run?;
        }
        Ok((loss_sum / total as f64, total))
    }

    /// One optimizer step over `micro` (gradient accumulation) at the schedule's next LR.
    pub fn train_step(&mut self, micro: &[Batch]) -> Result<StepStats> {
        let t0 = Instant::now();
        self.grads.zero()?;
        let (loss, targets) = self.accumulate(micro)?;
        if !loss.is_finite() {
            return Err(SftError::Invalid(format!(
                "loss became {loss} at step {}",
                self.steps + 1
            )));
        }
        let o = self.opt.step(&mut self.model, &self.grads)?;
        self.steps += 1;
        let seconds = t0.elapsed().as_secs_f64();
        let tokens: usize = micro.iter().map(|b| b.real_tokens).sum();
        Ok(StepStats {
            step: self.steps,
            loss,
            lr: o.lr,
            grad_norm: o.grad_norm,
            tokens,
            target_tokens: targets,
            seconds,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
        })
    }

    /// Gradients of the last step (before clipping).
    pub fn grads(&self) -> &LlamaParams {
        &self.grads
    }

    /// Examples cut to `max_seq_len`; those left without targets are dropped.
    /// Returns (examples, truncated, dropped).
    pub fn prepare(&self, examples: &[Example]) -> (Vec<Example>, usize, usize) {
        let (mut truncated, mut dropped) = (0, 0);
        let mut out = Vec::with_capacity(examples.len());
        for e in examples {
            let mut e = e.clone();
            truncated += e.truncate(self.cfg.max_seq_len) as usize;
            if e.target_count() == 0 {
                dropped += 1;
            } else {
                out.push(e);
            }
        }
        (out, truncated, dropped)
    }

    fn epoch_batches(&self, examples: &[Example], rng: &mut Rng) -> Result<Vec<Batch>> {
        let mut order: Vec<usize> = (0..examples.len()).collect();
        shuffle(&mut order, rng);
        let c = &self.cfg;
        let mut batches = make_batches(
            examples,
            &order,
            c.batch_size,
            c.packing,
            c.max_seq_len,
            c.pad_multiple,
        )?;
        // Packing orders rows by length; shuffle the batches so steps do not follow it.
        shuffle(&mut batches, rng);
        Ok(batches)
    }

    /// Optimizer steps per epoch for these (prepared) examples.
    pub fn steps_per_epoch(&self, examples: &[Example]) -> Result<usize> {
        let b = self.epoch_batches(examples, &mut Rng::new(self.cfg.seed))?;
        Ok(b.len().div_ceil(self.cfg.grad_accum))
    }

    /// Trains on `examples` for `epochs` (or `max_steps`), calling `on_step` after each
    /// optimizer step (progress, metrics). The schedule spans the whole run.
    pub fn fit(
        &mut self,
        examples: &[Example],
        mut on_step: impl FnMut(&StepStats) -> Result<()>,
    ) -> Result<FitSummary> {
        let (examples, truncated, dropped) = self.prepare(examples);
        if examples.is_empty() {
            return Err(SftError::Invalid(format!(
                "no examples left to train on ({dropped} had no target tokens within {} tokens)",
                self.cfg.max_seq_len
            )));
        }
        let total = self.total_steps(&examples)?;
        if let Schedule::Cosine { total_steps, .. } = &mut self.opt.config.schedule {
            if *total_steps == 0 {
                *total_steps = total as u64;
            }
        }
        let mut rng = Rng::new(self.cfg.seed);
        let (mut first, mut last, mut done) = (f64::NAN, f64::NAN, 0);
        while done < total {
            let batches = self.epoch_batches(&examples, &mut rng)?;
            for group in batches.chunks(self.cfg.grad_accum) {
                if done == total {
                    break;
                }
                let s = self.train_step(group)?;
                if done == 0 {
                    first = s.loss;
                }
                last = s.loss;
                done += 1;
                on_step(&s)?;
            }
        }
        Ok(FitSummary {
            steps: done,
            first_loss: first,
            last_loss: last,
            truncated,
            dropped,
        })
    }

    /// Optimizer steps [`Trainer::fit`] will take on these (prepared) examples.
    pub fn total_steps(&self, examples: &[Example]) -> Result<usize> {
        Ok(match self.cfg.max_steps {
            Some(s) => s,
            None => self.steps_per_epoch(examples)? * self.cfg.epochs,
        })
    }
}

/// Fisher-Yates shuffle from the run's seed.
fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}
