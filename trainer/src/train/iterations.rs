//! What the single-process and the tensor-parallel trainers share in a step's
//! `num_iterations` updates on one batch of rollouts: this rank's loss weights, the sequences,
//! the old/reference log-probs, the loss and its gradient, and the running totals that become
//! the step's report. Each trainer brings its own forward/backward and optimizer step.

use std::time::Instant;

use super::dp_step::loss_weights;
use super::policy::Sequence;
use super::rollout::Rollouts;
use super::step::{StepReport, StepSettings, Timings};
use super::Result;
use crate::dp::DataParallel;
use crate::grpo::{grpo_loss, TokenLogps};

/// The inputs of a step's loss other than the policy's current log-probs.
struct LossInputs<'a> {
    n_seq: usize,
    seq_len: usize,
    old: Option<Vec<f32>>,
    reference: Option<Vec<f32>>,
    mask: &'a [f32],
}

impl<'a> LossInputs<'a> {
    /// The loss inputs with `logp` as the current policy's log-probs.
    fn with<'b>(&'b self, logp: &'b [f32]) -> TokenLogps<'b> {
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

/// A step's updates on one rank (see the module docs).
pub(super) struct Iterations<'a> {
    s: &'a StepSettings,
    rollouts: &'a Rollouts,
    advantages: &'a [f64],
    /// Every completion paired with its problem's prompt.
    pub(super) seqs: Vec<Sequence<'a>>,
    /// This rank's share of the batch's loss normaliser and of its tokens (1 without DP).
    w: (f64, f64),
    inputs: LossInputs<'a>,
    /// Weighted loss, KL and clip fraction, and the grad norm, summed over the updates.
    totals: [f64; 4],
    pub(super) timings: Timings,
}

impl<'a> Iterations<'a> {
    /// Sets up the updates: the loss weights (summed over `dp`) and the sequences. Call
    /// [`Iterations::take_logps`] next.
    pub(super) fn start(
        s: &'a StepSettings,
        prompts: &'a [Vec<u32>],
        rollouts: &'a Rollouts,
        advantages: &'a [f64],
        dp: Option<&mut DataParallel>,
    ) -> Result<Self> {
        let w = match dp {
            Some(d) => loss_weights(d, s.loss.loss_type, rollouts)?,
            None => (1.0, 1.0),
        };
        let seqs: Vec<Sequence<'a>> = rollouts
            .completions
            .iter()
            .zip(&rollouts.problem_of)
            .map(|(c, &p)| Sequence {
                prompt: &prompts[p],
                completion: c,
            })
            .collect();
        let inputs = LossInputs {
            n_seq: seqs.len(),
            seq_len: rollouts.width,
            old: None,
            reference: None,
            mask: &rollouts.mask,
        };
        Ok(Iterations {
            s,
            rollouts,
            advantages,
            seqs,
            w,
            inputs,
            totals: [0.0; 4],
            timings: Timings::default(),
        })
    }

    /// Takes the sampling policy's log-probs (needed when the batch is reused) and then the
    /// reference's (when `beta != 0`) with `logps`, in that order on every rank.
    pub(super) fn take_logps<M>(
        &mut self,
        policy: &M,
        reference: Option<&M>,
        mut logps: impl FnMut(&M, &[Sequence<'_>]) -> Result<Vec<f32>>,
    ) -> Result<()> {
        let t0 = Instant::now();
        if self.s.num_iterations > 1 {
            self.inputs.old = Some(logps(policy, &self.seqs)?);
        }
        if let (Some(r), true) = (reference, self.s.loss.beta != 0.0) {
            self.inputs.reference = Some(logps(r, &self.seqs)?);
        }
        self.timings.logprobs = t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// One update's policy forward + backward: `backward(seqs, grad_of)` runs it, taking the
    /// loss gradient of its log-probs from `grad_of` (scaled by this rank's share of the
    /// normaliser), and returns the log-probs; their loss is added to the totals.
    pub(super) fn backward(
        &mut self,
        backward: impl FnOnce(
            &[Sequence<'_>],
            &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
        ) -> Result<Vec<f32>>,
    ) -> Result<()> {
        let (s, advantages, w_loss) = (self.s, self.advantages, self.w.0);
        let inputs = &self.inputs;
        let mut grad_of = |logp: &[f32]| -> Result<Vec<f32>> {
            let mut g = grpo_loss(&s.loss, &inputs.with(logp), advantages)?.grad;
            if w_loss != 1.0 {
                g.iter_mut().for_each(|v| *v = (*v as f64 * w_loss) as f32);
            }
            Ok(g)
        };
        let logp = backward(&self.seqs, &mut grad_of)?;
        let out = grpo_loss(&s.loss, &inputs.with(&logp), advantages)?;
        self.totals[0] += out.loss * self.w.0;
        self.totals[1] += out.kl * self.w.1;
        self.totals[2] += out.clip_fraction * self.w.1;
        Ok(())
    }

    /// Records one update's optimizer step: its grad norm and the time since `t0`.
    pub(super) fn stepped(&mut self, grad_norm: f64, t0: Instant) {
        self.totals[3] += grad_norm;
        self.timings.optimizer += t0.elapsed().as_secs_f64();
    }

    /// The report of the updates: means of loss, KL, clip fraction and grad norm (with `dp`
    /// the first three summed across ranks, so they are the whole batch's).
    pub(super) fn report(self, dp: Option<&mut DataParallel>) -> Result<StepReport> {
        let mut totals = self.totals;
        if let Some(dp) = dp {
            let g = dp.sum_f64(&totals[..3])?;
            totals[..3].copy_from_slice(&g);
        }
        let (n, r) = (self.s.num_iterations, self.rollouts);
        let it = n as f64;
        let tokens: usize = self
            .seqs
            .iter()
            .map(|q| q.prompt.len() + q.completion.len())
            .sum();
        Ok(StepReport {
            rewards: Vec::new(),
            format_errors: 0,
            completion_lens: r.completions.iter().map(Vec::len).collect(),
            truncated: r.truncated.iter().filter(|&&t| t).count(),
            loss: totals[0] / it,
            kl: totals[1] / it,
            clip_fraction: totals[2] / it,
            grad_norm: totals[3] / it,
            generated_tokens: r.completions.iter().map(Vec::len).sum(),
            trained_tokens: tokens * n,
            timings: self.timings,
        })
    }
}
