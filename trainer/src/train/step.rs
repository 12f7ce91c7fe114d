//! One GRPO step: rollouts → parallel rewards → group advantages → [old / reference
//! log-probs] → policy forward + backward with the loss on completion tokens → clip → AdamW.
//! Rollout and training share one `Llama`: the next step samples from the updated weights.

use std::time::Instant;

use model::optim::AdamW;
use model::{Llama, LlamaParams};
use rayon::prelude::*;

use super::iterations::Iterations;
use super::policy::{completion_logps, policy_backward, policy_backward_hooked};
use super::rollout::{self, RolloutSettings, Rollouts};
use super::Result;
use crate::config::GrpoConfig;
use crate::dp::DataParallel;
use crate::grpo::{compute_advantages, LossConfig, ScaleRewards};

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
    /// Policy forward + backward (including the gradient sync).
    pub backward: f64,
    /// Of `backward`: the data-parallel gradient all-reduce's wait after the backward
    /// (the whole all-reduce without overlap, its tail with).
    pub grad_sync: f64,
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
    let (w, temp, micro) = (rollouts.width, s.rollout.temperature, s.micro_batch);
    let mut it = Iterations::start(s, prompts, rollouts, advantages, dp.as_deref_mut())?;
    it.take_logps(&learner.model, learner.reference.as_ref(), |m, q| {
        completion_logps(m, q, w, temp, micro)
    })?;
    for _ in 0..s.num_iterations {
        let t0 = Instant::now();
        learner.grads.zero()?;
        let model = &learner.model;
        // ZeRO-1 reduces the gradients inside its step (reduce-scatter, not all-reduce).
        match (learner.zero.is_some(), dp.as_deref_mut()) {
            (false, Some(dp)) => {
                let ((), wait) = dp.backward_and_sync(&mut learner.grads, |grads, hook| {
                    it.backward(|q, g| {
                        policy_backward_hooked(model, q, w, temp, micro, grads, g, hook)
                    })
                })?;
                it.timings.grad_sync += wait;
            }
            _ => it.backward(|q, g| {
                policy_backward(model, q, w, temp, micro, &mut learner.grads, g)
            })?,
        }
        it.timings.backward += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let lr = lr as f32;
        let stats = match (learner.zero.as_mut(), dp.as_deref_mut()) {
            (Some(z), Some(dp)) => {
                z.step(dp, &mut learner.opt, &mut learner.model, &learner.grads, lr)?
            }
            _ => learner
                .opt
                .step_with_lr(&mut learner.model, &learner.grads, lr)?,
        };
        it.stepped(stats.grad_norm, t0);
    }
    it.report(dp)
}
