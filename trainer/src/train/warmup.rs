//! A minimal supervised warm-up (next-token cross-entropy on completion tokens only), built
//! on the same policy-gradient pass as GRPO: d loss / d logp = -1 / (number of target tokens).
//! Quickstart uses it to teach a fresh model the SWE-RL answer format before GRPO.

use model::optim::AdamW;
use model::Llama;

use super::policy::{policy_backward, Sequence};
use super::Result;

/// One prompt + the completion to imitate.
#[derive(Debug, Clone)]
pub struct Demo {
    pub prompt: Vec<u32>,
    pub completion: Vec<u32>,
}

/// Mean per-token negative log-likelihood of `batch`'s completions, and the gradient step.
pub fn sft_step(
    m: &mut Llama,
    opt: &mut AdamW,
    batch: &[&Demo],
    lr: f64,
    micro: usize,
) -> Result<f64> {
    let width = batch
        .iter()
        .map(|d| d.completion.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let seqs: Vec<Sequence<'_>> = batch
        .iter()
        .map(|d| Sequence {
            prompt: &d.prompt,
            completion: &d.completion,
        })
        .collect();
    let tokens: usize = batch.iter().map(|d| d.completion.len()).sum();
    let scale = -1.0 / tokens.max(1) as f32;
    let mut grad = vec![0f32; seqs.len() * width];
    for (i, d) in batch.iter().enumerate() {
        grad[i * width..i * width + d.completion.len()].fill(scale);
    }
    let mut grads = m.zero_grads()?;
    let mut grad_of = |_: &[f32]| Ok(grad.clone());
    let logp = policy_backward(m, &seqs, width, 1.0, micro, &mut grads, &mut grad_of)?;
    opt.step_with_lr(m, &grads, lr as f32)?;
    let nll: f64 = -logp.iter().map(|&x| x as f64).sum::<f64>();
    Ok(nll / tokens.max(1) as f64)
}
