//! One GRPO step on a tensor-parallel rank, optionally inside a data-parallel group.
//!
//! A TP group acts as one policy: its ranks sample the same tokens (TP generation draws from
//! the all-gathered last-position logits with one seeded RNG), score the same completions,
//! and run the vocab-parallel log-prob forward and backward on their shards. After each
//! backward the replicated K/V copies' gradients are summed over the TP group, the shard
//! gradients are summed over the DP group (ranks with the same TP rank), every rank clips by
//! the whole model's norm, and AdamW steps each shard. The problems are split over DP ranks
//! exactly as in [`dp_step`](super::dp_step), with the same per-rank sampling seeds, so a
//! `tp × dp` step equals a `1 × dp` step on the same rollouts.

use std::time::Instant;

use model::optim::AdamW;
use model::tp::{ShardPlan, Split, TpModel};
use model::LlamaParams;
use runtime::comm::Communicator;
use runtime::{DType, Device, Tensor};

use super::dp_step::rank_seed;
use super::iterations::Iterations;
use super::rollout::{self, RolloutSettings, Rollouts};
use super::step::{score_rollouts, Reward, Scored, StepReport, StepSettings};
use super::tp_policy::{completion_logps, policy_backward};
use super::zero1::Zero1;
use super::Result;
use crate::dp::{DataParallel, DpError};
use crate::grpo::compute_advantages;

/// A TP rank's training state: its shard, the optimizer over the shard, and the frozen
/// reference's shard (held only when `beta != 0`).
pub struct TpLearner {
    pub model: TpModel,
    pub opt: AdamW,
    pub reference: Option<TpModel>,
    grads: LlamaParams,
    /// This rank's share (over its DP group) of the shard's AdamW state under ZeRO-1; `opt`
    /// then holds no moments.
    pub zero: Option<Zero1>,
}

impl TpLearner {
    pub fn new(model: TpModel, opt: AdamW, reference: Option<TpModel>) -> Result<Self> {
        let grads = model.zero_grads()?;
        Ok(TpLearner {
            model,
            opt,
            reference,
            grads,
            zero: None,
        })
    }

    /// This shard's gradients of the last step's last iteration (reduced over TP, and over
    /// DP unless ZeRO-1 reduce-scattered them).
    pub fn grads(&self) -> &LlamaParams {
        &self.grads
    }
}

/// Rollouts of `prompts` sampled by the TP group (every rank gets the same tokens).
pub fn generate(
    m: &TpModel,
    prompts: &[Vec<u32>],
    s: &RolloutSettings,
    seed: u64,
    tp: &mut dyn Communicator,
) -> Result<Rollouts> {
    let (batch, problem_of, cfg) = rollout::requests(prompts, s, seed);
    let raw = m.generate(&batch, &cfg, tp)?;
    Ok(Rollouts::from_completions(problem_of, raw, s))
}

/// A shard of the step's problems scored with their step-wide indices.
struct Offset<'a> {
    inner: &'a dyn Reward,
    by: usize,
}

impl Reward for Offset<'_> {
    fn score(&self, problem: usize, completion: &[u32]) -> Scored {
        self.inner.score(problem + self.by, completion)
    }
}

/// One GRPO step over `prompts` (the whole step's problems, the same on every rank); with
/// `dp`, this rank's DP shard of them. The report covers the whole batch on every rank.
#[allow(clippy::too_many_arguments)]
pub fn grpo_step_tp(
    learner: &mut TpLearner,
    s: &StepSettings,
    prompts: &[Vec<u32>],
    reward: &dyn Reward,
    seed: u64,
    lr: f64,
    tp: &mut dyn Communicator,
    mut dp: Option<&mut DataParallel>,
) -> Result<StepReport> {
    let (range, seed) = match dp.as_deref() {
        Some(d) => (d.shard(prompts.len())?, rank_seed(seed, d.rank())),
        None => (0..prompts.len(), seed),
    };
    let local = &prompts[range.clone()];
    let t0 = Instant::now();
    let rollouts = generate(&learner.model, local, &s.rollout, seed, tp)?;
    let generate_s = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let scored = score_rollouts(
        &rollouts,
        &Offset {
            inner: reward,
            by: range.start,
        },
    );
    let reward_s = t0.elapsed().as_secs_f64();
    let mine: Vec<f64> = scored.iter().map(|x| x.reward).collect();
    let rewards = match dp.as_deref_mut() {
        Some(d) => d.gather_f64(&mine)?,
        None => mine.clone(),
    };
    let advantages = compute_advantages(&rewards, s.rollout.num_generations, s.scale_rewards)?;
    let start = range.start * s.rollout.num_generations;
    let adv = &advantages[start..start + mine.len()];

    let mut report =
        train_on_rollouts(learner, s, local, &rollouts, adv, lr, tp, dp.as_deref_mut())?;
    let errors = scored.iter().filter(|x| x.format_error.is_some()).count();
    report.format_errors = errors;
    if let Some(d) = dp {
        // Whole-batch rollout statistics, in single-rank order.
        let lens: Vec<f64> = report.completion_lens.iter().map(|&l| l as f64).collect();
        let counts = [
            errors as f64,
            report.truncated as f64,
            report.generated_tokens as f64,
            report.trained_tokens as f64,
        ];
        let all_lens = d.gather_f64(&lens)?;
        let c = d.sum_f64(&counts)?;
        report.completion_lens = all_lens.iter().map(|&l| l as usize).collect();
        report.format_errors = c[0] as usize;
        report.truncated = c[1] as usize;
        report.generated_tokens = c[2] as usize;
        report.trained_tokens = c[3] as usize;
    }
    report.rewards = rewards;
    report.timings.generate = generate_s;
    report.timings.reward = reward_s;
    Ok(report)
}

/// `num_iterations` updates of the shard on given rollouts and their advantages; with `dp`,
/// this rank's loss gradient is weighted by its share of the batch's normaliser and the loss,
/// KL and clip fraction are the whole batch's.
#[allow(clippy::too_many_arguments)]
pub fn train_on_rollouts(
    learner: &mut TpLearner,
    s: &StepSettings,
    prompts: &[Vec<u32>],
    rollouts: &Rollouts,
    advantages: &[f64],
    lr: f64,
    tp: &mut dyn Communicator,
    mut dp: Option<&mut DataParallel>,
) -> Result<StepReport> {
    let (w, temp, micro) = (rollouts.width, s.rollout.temperature, s.micro_batch);
    let mut it = Iterations::start(s, prompts, rollouts, advantages, dp.as_deref_mut())?;
    it.take_logps(&learner.model, learner.reference.as_ref(), |m, q| {
        completion_logps(m, q, w, temp, micro, tp)
    })?;
    for _ in 0..s.num_iterations {
        let t0 = Instant::now();
        learner.grads.zero()?;
        it.backward(|q, g| {
            policy_backward(&learner.model, q, w, temp, micro, &mut learner.grads, g, tp)
        })?;
        learner
            .model
            .reduce_replicated_grads(&mut learner.grads, tp)?;
        // Not overlapped: the DP sum must follow the TP sum of the replicated K/V gradients
        // to stay bit-identical to the single-rank order.
        if let (Some(z), Some(d)) = (learner.zero.as_mut(), dp.as_deref_mut()) {
            it.timings.backward += t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            let l = &mut learner.model;
            let counted = counted_tensors(&l.plan);
            let stats = z.step_with(
                d,
                &mut learner.opt,
                &mut l.local,
                &learner.grads,
                lr as f32,
                &|i| counted[i],
                &mut |x| tp_sum_f64(tp, x),
            )?;
            it.stepped(stats.grad_norm, t0);
            continue;
        }
        if let Some(d) = dp.as_deref_mut() {
            let t1 = Instant::now();
            d.sync_grads(&mut learner.grads)?;
            it.timings.grad_sync += t1.elapsed().as_secs_f64();
        }
        // After the DP sum every DP replica holds the same shard gradients, so the TP
        // group's norm is the whole job's.
        let norm = learner.model.grad_norm(&learner.grads, tp)?;
        it.timings.backward += t0.elapsed().as_secs_f64();

        let t0 = Instant::now();
        let stats = learner.opt.step_with_norm(
            &mut learner.model.local,
            &learner.grads,
            lr as f32,
            norm,
        )?;
        it.stepped(stats.grad_norm, t0);
    }
    it.report(dp)
}

/// Which of a shard's tensors count towards the whole model's gradient norm: a replicated
/// tensor (norms; K/V heads held by several ranks) is counted by one holder only, as
/// [`TpModel::grad_norm`] counts it.
fn counted_tensors(plan: &ShardPlan) -> Vec<bool> {
    let splits = plan.splits();
    let kv = |name: &str| name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight");
    splits
        .iter()
        .map(|(name, _, split)| match split {
            Split::Replicated => plan.rank == 0,
            _ if kv(name) => plan.kv_owner(),
            _ => true,
        })
        .collect()
}

/// The sum of `x` over the TP group in rank order, in f64 (each value crosses as an f32
/// pair, high part and remainder, as [`DataParallel::gather_f64`] sends it).
fn tp_sum_f64(tp: &mut dyn Communicator, x: f64) -> std::result::Result<f64, DpError> {
    let hi = x as f32;
    let lo = if hi.is_finite() {
        (x - hi as f64) as f32
    } else {
        0.0
    };
    let input = Tensor::from_vec(vec![hi, lo], &[2])?;
    let mut all = Tensor::zeros(&[2 * tp.world_size()], DType::F32, &Device::Cpu)?;
    tp.all_gather(&input, &mut all)?;
    let all = all.as_slice::<f32>()?;
    Ok(all.chunks_exact(2).map(|p| p[0] as f64 + p[1] as f64).sum())
}
