//! One GRPO step: rollouts → parallel rewards → group advantages → [old / reference
//! log-probs] → policy forward + backward with the loss on completion tokens → clip → AdamW.
//! Rollout and training share one `Llama`: the next step samples from the updated weights.

use std::time::Instant;

use model::optim::AdamW;
use model::{Llama, LlamaParams};
use rayon::prelude::*;

use super::policy::{completion_logps, policy_backward, Sequence};
use super::rollout::{self, RolloutSettings, Rollouts};
use super::Result;
use crate::config::GrpoConfig;
use crate::dp::DataParallel;
use crate::grpo::{
    compute_advantages, grpo_loss, LossConfig, LossOutput, ScaleRewards, TokenLogps,
};

/// The reward of one completion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub reward: f64,
    /// Short name of the format error, if the answer was malformed.
    pub format_error: Option<&'static str>,
}

/// Scores completion tokens of problem `problem` (its index in the step's prompt list).
pub trait Reward: Sync {
    fn score(&self, problem: usize, completion: &[u32]) -> Scored;
}

/// Everything that changes during training, in one place.
pub struct Learner {
    pub model: Llama,
    pub opt: AdamW,
    /// Frozen initial policy, held only when `beta != 0`.
    pub reference: Option<Llama>,
    grads: LlamaParams,
    /// This rank's shard of the optimizer state under ZeRO-1 (`opt` then holds no moments).
    pub zero: Option<super::zero1::Zero1>,
}

impl Learner {
    pub fn new(model: Llama, opt: AdamW, reference: Option<Llama>) -> Result<Self> {
        let grads = model.zero_grads()?;
        Ok(Learner {
            model,
            opt,
            reference,
            grads,
            zero: None,
        })
    }

    /// The gradients of the last step's last iteration (for tests and diagnostics).
    pub fn grads(&self) -> &LlamaParams {
        &self.grads
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepSettings {
    pub rollout: RolloutSettings,
    pub loss: LossConfig,
    pub scale_rewards: ScaleRewards,
    pub num_iterations: usize,
    pub micro_batch: usize,
}

impl StepSettings {
    pub fn from_config(c: &GrpoConfig, eos_token_ids: Vec<u32>) -> Self {
        StepSettings {
            rollout: RolloutSettings {
                num_generations: c.num_generations,
                max_completion_length: c.max_completion_length,
                temperature: c.temperature as f32,
                top_p: c.top_p as f32,
                top_k: c.top_k,
                mask_truncated_completions: c.mask_truncated_completions,
                eos_token_ids,
            },
            loss: c.loss_config(),
            scale_rewards: c.scale_rewards,
            num_iterations: c.num_iterations,
            micro_batch: c.micro_batch,
        }
    }
}

/// Wall-clock seconds per phase of a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    pub generate: f64,
    pub reward: f64,
    /// Old-policy and reference log-probs.
    pub logprobs: f64,
    /// Policy forward + backward.
    pub backward: f64,
    pub optimizer: f64,
}

/// What one step did (means over its `num_iterations` updates for loss/KL/clipping).
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub rewards: Vec<f64>,
    pub format_errors: usize,
    pub completion_lens: Vec<usize>,
    pub truncated: usize,
    pub loss: f64,
    pub kl: f64,
    pub clip_fraction: f64,
    pub grad_norm: f64,
    pub generated_tokens: usize,
    /// Tokens through the policy forward + backward (prompt + completion, all iterations).
    pub trained_tokens: usize,
    pub timings: Timings,
}

/// Rewards of every rollout, computed in parallel.
pub fn score_rollouts(r: &Rollouts, reward: &dyn Reward) -> Vec<Scored> {
    r.completions
        .par_iter()
        .zip(r.problem_of.par_iter())
        .map(|(c, &p)| reward.score(p, c))
        .collect()
}

/// Runs one step on `prompts` at learning rate `lr`; `seed` fixes the sampling.
pub fn grpo_step(
    learner: &mut Learner,
    s: &StepSettings,
    prompts: &[Vec<u32>],
    reward: &dyn Reward,
    seed: u64,
    lr: f64,
) -> Result<StepReport> {
    let mut timings = Timings::default();
    let t0 = Instant::now();
    let rollouts = rollout::generate(&learner.model, prompts, &s.rollout, seed)?;
    timings.generate = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let scored = score_rollouts(&rollouts, reward);
    timings.reward = t0.elapsed().as_secs_f64();
    let rewards: Vec<f64> = scored.iter().map(|x| x.reward).collect();
    let advantages = compute_advantages(&rewards, s.rollout.num_generations, s.scale_rewards)?;

    let mut report = train_on_rollouts(learner, s, prompts, &rollouts, &advantages, lr)?;
    report.timings.generate = timings.generate;
    report.timings.reward = timings.reward;
    report.rewards = rewards;
    report.format_errors = scored.iter().filter(|x| x.format_error.is_some()).count();
    Ok(report)
}

/// The training half of a step on given rollouts and advantages: `num_iterations` updates.
pub fn train_on_rollouts(
    learner: &mut Learner,
    s: &StepSettings,
    prompts: &[Vec<u32>],
    rollouts: &Rollouts,
    advantages: &[f64],
    lr: f64,
) -> Result<StepReport> {
    train_on_rollouts_dp(learner, s, prompts, rollouts, advantages, lr, None)
}

/// [`train_on_rollouts`] on this rank's share of the rollouts: with `dp`, each rank's loss
/// gradient is weighted by its share of the batch's normaliser and the gradients are summed
/// across ranks before every optimizer step, so all replicas take the single-rank update;
/// loss, KL and clip fraction are the whole batch's.
pub fn train_on_rollouts_dp(
    learner: &mut Learner,
    s: &StepSettings,
    prompts: &[Vec<u32>],
    rollouts: &Rollouts,
    advantages: &[f64],
    lr: f64,
    mut dp: Option<&mut DataParallel>,
) -> Result<StepReport> {
    let (w_loss, w_tok) = match dp.as_deref_mut() {
        Some(dp) => super::dp_step::loss_weights(dp, s.loss.loss_type, rollouts)?,
        None => (1.0, 1.0),
    };
    let temperature = s.rollout.temperature;
    let width = rollouts.width;
    let seqs = sequences(rollouts, prompts);
    let mut timings = Timings::default();

    let t0 = Instant::now();
    let inputs = LossInputs::new(
        s,
        rollouts,
        seqs.len(),
        &learner.model,
        learner.reference.as_ref(),
        |m| completion_logps(m, &seqs, width, temperature, s.micro_batch),
    )?;
    timings.logprobs = t0.elapsed().as_secs_f64();

    let mut totals = [0f64; 4];
    for _ in 0..s.num_iterations {
        let t0 = Instant::now();
        learner.grads.zero()?;
        let mut grad_of = |logp: &[f32]| -> Result<Vec<f32>> {
            let x = inputs.with(logp);
            weighted_loss_grad(&s.loss, &x, advantages, w_loss)
        };
        let logp = policy_backward(
            &learner.model,
            &seqs,
            width,
            temperature,
            s.micro_batch,
            &mut learner.grads,
            &mut grad_of,
        )?;
        let x = inputs.with(&logp);
        let out = grpo_loss(&s.loss, &x, advantages)?;
        let zero = match (learner.zero.as_mut(), dp.as_deref_mut()) {
            (Some(z), Some(dp)) => Some((z, dp)),
            _ => None,
        };
        let stats = match zero {
            // ZeRO-1 reduces the gradients inside its step (reduce-scatter, not all-reduce).
            Some((z, dp)) => {
                timings.backward += t0.elapsed().as_secs_f64();
                let t0 = Instant::now();
                let st = z.step(
                    dp,
                    &mut learner.opt,
                    &mut learner.model,
                    &learner.grads,
                    lr as f32,
                )?;
                timings.optimizer += t0.elapsed().as_secs_f64();
                st
            }
            None => {
                if let Some(dp) = dp.as_deref_mut() {
                    dp.sync_grads(&mut learner.grads)?;
                }
                timings.backward += t0.elapsed().as_secs_f64();
                let t0 = Instant::now();
                let st = learner
                    .opt
                    .step_with_lr(&mut learner.model, &learner.grads, lr as f32)?;
                timings.optimizer += t0.elapsed().as_secs_f64();
                st
            }
        };
        accumulate(&mut totals, &out, (w_loss, w_tok), stats.grad_norm);
    }
    iterations_report(rollouts, &seqs, s.num_iterations, totals, timings, dp)
}

/// Pairs every completion with its problem's prompt.
pub(super) fn sequences<'a>(rollouts: &'a Rollouts, prompts: &'a [Vec<u32>]) -> Vec<Sequence<'a>> {
    rollouts
        .completions
        .iter()
        .zip(&rollouts.problem_of)
        .map(|(c, &p)| Sequence {
            prompt: &prompts[p],
            completion: c,
        })
        .collect()
}

/// The loss gradient for `x`, scaled by this rank's share `w_loss` of the batch's
/// normaliser (1 without data parallelism).
pub(super) fn weighted_loss_grad(
    loss: &LossConfig,
    x: &TokenLogps<'_>,
    advantages: &[f64],
    w_loss: f64,
) -> Result<Vec<f32>> {
    let mut g = grpo_loss(loss, x, advantages)?.grad;
    if w_loss != 1.0 {
        g.iter_mut().for_each(|v| *v = (*v as f64 * w_loss) as f32);
    }
    Ok(g)
}

/// Adds one update's weighted loss, KL and clip fraction (`w` = loss and token weights of
/// this rank's share) and its grad norm to `totals`.
pub(super) fn accumulate(totals: &mut [f64; 4], out: &LossOutput, w: (f64, f64), grad_norm: f64) {
    totals[0] += out.loss * w.0;
    totals[1] += out.kl * w.1;
    totals[2] += out.clip_fraction * w.1;
    totals[3] += grad_norm;
}

/// The report of `num_iterations` updates on `seqs`; `totals` sums loss, KL, clip fraction
/// and grad norm over the updates, and with `dp` the first three are summed across ranks so
/// they are the whole batch's.
pub(super) fn iterations_report(
    rollouts: &Rollouts,
    seqs: &[Sequence<'_>],
    num_iterations: usize,
    mut totals: [f64; 4],
    timings: Timings,
    dp: Option<&mut DataParallel>,
) -> Result<StepReport> {
    if let Some(dp) = dp {
        let g = dp.sum_f64(&totals[..3])?;
        totals[..3].copy_from_slice(&g);
    }
    let it = num_iterations as f64;
    let tokens: usize = seqs
        .iter()
        .map(|q| q.prompt.len() + q.completion.len())
        .sum();
    Ok(StepReport {
        rewards: Vec::new(),
        format_errors: 0,
        completion_lens: rollouts.completions.iter().map(Vec::len).collect(),
        truncated: rollouts.truncated.iter().filter(|&&t| t).count(),
        loss: totals[0] / it,
        kl: totals[1] / it,
        clip_fraction: totals[2] / it,
        grad_norm: totals[3] / it,
        generated_tokens: rollouts.completions.iter().map(Vec::len).sum(),
        trained_tokens: tokens * num_iterations,
        timings,
    })
}

/// The inputs of a step's loss other than the policy's current log-probs.
pub(super) struct LossInputs<'a> {
    n_seq: usize,
    seq_len: usize,
    old: Option<Vec<f32>>,
    reference: Option<Vec<f32>>,
    mask: &'a [f32],
}

impl<'a> LossInputs<'a> {
    /// Takes the sampling policy's log-probs (needed when the batch is reused) and then the
    /// reference's (when `beta != 0`) with `logps`, in that order on every rank.
    pub(super) fn new<M>(
        s: &StepSettings,
        rollouts: &'a Rollouts,
        n_seq: usize,
        policy: &M,
        reference: Option<&M>,
        mut logps: impl FnMut(&M) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let old = match s.num_iterations > 1 {
            true => Some(logps(policy)?),
            false => None,
        };
        let reference = match (reference, s.loss.beta != 0.0) {
            (Some(r), true) => Some(logps(r)?),
            _ => None,
        };
        Ok(LossInputs {
            n_seq,
            seq_len: rollouts.width,
            old,
            reference,
            mask: &rollouts.mask,
        })
    }

    /// The loss inputs with `logp` as the current policy's log-probs.
    pub(super) fn with<'b>(&'b self, logp: &'b [f32]) -> TokenLogps<'b> {
        TokenLogps {
            n_seq: self.n_seq,
            seq_len: self.seq_len,
            logp,
            old_logp: self.old.as_deref(),
            ref_logp: self.reference.as_deref(),
            mask: self.mask,
        }
    }
}
