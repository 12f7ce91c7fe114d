//! Data-parallel GRPO: the problems of a step are split across DP ranks (contiguous shards in
//! rank order), each rank samples and scores the rollouts of its own problems, so a group's
//! rollouts stay on one rank. Rewards are gathered so that every rank computes the advantages
//! of the whole batch exactly as one rank would (including `scale_rewards = "batch"`'s batch
//! standard deviation), then trains on its shard with the gradient all-reduce of
//! [`DataParallel`].

use super::rollout::{self, Rollouts};
use super::step::{
    score_rollouts, train_on_rollouts_dp, Learner, Reward, Scored, StepReport, StepSettings,
};
use super::Result;
use crate::dp::DataParallel;
use crate::grpo::{compute_advantages, LossType};

/// `(loss weight, token weight)` of this rank's shard: its share of the loss normaliser (the
/// sequence count for `grpo`/`dr_grpo`, the completion-token count for `bnpo`/`dapo`) and of
/// the token count (for the KL and clip-fraction means).
pub fn loss_weights(
    dp: &mut DataParallel,
    loss_type: LossType,
    rollouts: &Rollouts,
) -> Result<(f64, f64)> {
    let n = rollouts.len() as f64;
    let tokens: f64 = rollouts.mask.iter().map(|&m| m as f64).sum();
    let g = dp.sum_f64(&[n, tokens])?;
    let w_tok = tokens.max(1.0) / g[1].max(1.0);
    let w_loss = match loss_type {
        LossType::Grpo | LossType::DrGrpo => n / g[0].max(1.0),
        LossType::Bnpo | LossType::Dapo => w_tok,
    };
    Ok((w_loss, w_tok))
}

/// Scores a shard's completions with the step-wide problem indices the task expects.
struct Shifted<'a> {
    inner: &'a dyn Reward,
    offset: usize,
}

impl Reward for Shifted<'_> {
    fn score(&self, problem: usize, completion: &[u32]) -> Scored {
        self.inner.score(problem + self.offset, completion)
    }
}

/// The sampling seed of `rank`'s shard: rank 0 keeps the step's seed (so a one-rank group
/// samples exactly what the single-process trainer does), the others get distinct streams.
pub fn rank_seed(seed: u64, rank: usize) -> u64 {
    seed ^ (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// One GRPO step over `prompts` (the whole step's problems, the same on every rank) on this
/// rank's shard; the report's rewards, lengths and counts cover the whole batch.
pub fn grpo_step_dp(
    learner: &mut Learner,
    s: &StepSettings,
    prompts: &[Vec<u32>],
    reward: &dyn Reward,
    seed: u64,
    lr: f64,
    dp: &mut DataParallel,
) -> Result<StepReport> {
    let range = dp.shard(prompts.len())?;
    let local = &prompts[range.clone()];
    let t0 = std::time::Instant::now();
    let rollouts = rollout::generate(
        &learner.model,
        local,
        &s.rollout,
        rank_seed(seed, dp.rank()),
    )?;
    let generate_s = t0.elapsed().as_secs_f64();
    let t0 = std::time::Instant::now();
    let shifted = Shifted {
        inner: reward,
        offset: range.start,
    };
    let scored = score_rollouts(&rollouts, &shifted);
    let reward_s = t0.elapsed().as_secs_f64();
    train_shard(
        learner,
        s,
        local,
        &rollouts,
        &scored,
        lr,
        dp,
        (generate_s, reward_s),
    )
}

/// The rest of a DP step on given shard rollouts (for tests that fix the rollouts).
#[allow(clippy::too_many_arguments)]
pub fn train_shard(
    learner: &mut Learner,
    s: &StepSettings,
    local_prompts: &[Vec<u32>],
    rollouts: &Rollouts,
    scored: &[Scored],
    lr: f64,
    dp: &mut DataParallel,
    (generate_s, reward_s): (f64, f64),
) -> Result<StepReport> {
    let g = s.rollout.num_generations;
    let local: Vec<f64> = scored.iter().map(|x| x.reward).collect();
    let rewards = dp.gather_f64(&local)?;
    let advantages = compute_advantages(&rewards, g, s.scale_rewards)?;
    let start = dp.rank() * local.len();
    let mine = &advantages[start..start + local.len()];
    let mut report = train_on_rollouts_dp(learner, s, local_prompts, rollouts, mine, lr, Some(dp))?;
    // Whole-batch rollout statistics, in single-rank order.
    let lens: Vec<f64> = rollouts
        .completions
        .iter()
        .map(|c| c.len() as f64)
        .collect();
    let counts = [
        scored.iter().filter(|x| x.format_error.is_some()).count() as f64,
        report.truncated as f64,
        report.generated_tokens as f64,
        report.trained_tokens as f64,
    ];
    let all_lens = dp.gather_f64(&lens)?;
    let c = dp.sum_f64(&counts)?;
    report.rewards = rewards;
    report.completion_lens = all_lens.iter().map(|&l| l as usize).collect();
    report.format_errors = c[0] as usize;
    report.truncated = c[1] as usize;
    report.generated_tokens = c[2] as usize;
    report.trained_tokens = c[3] as usize;
    report.timings.generate = generate_s;
    report.timings.reward = reward_s;
    Ok(report)
}
