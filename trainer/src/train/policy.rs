//! Per-token log-probs of completions under a policy, and the policy gradient from
//! d loss / d logp: a padded `[B, T]` forward of prompt + completion, `token_logprobs` at
//! `temperature` on the completion positions only, and [`Llama::backward_from_dlogits`]
//! started from the log-prob backward's d logits.

use model::layers::lm_head::IGNORE;
use model::model::{GradHook, NoHook};
use model::{Activations, GradBuffers, Llama, LlamaParams};
use runtime::{ops, DType, Tensor};

use super::{Result, TrainError};

/// One prompt + completion; `completion` is scored, the prompt only conditions it.
#[derive(Debug, Clone, Copy)]
pub struct Sequence<'a> {
    pub prompt: &'a [u32],
    pub completion: &'a [u32],
}

/// The padded `[B, T]` ids and completion targets of some rows of a batch, and where each
/// row's completion sits (shared by the single-process and tensor-parallel paths).
pub(crate) struct Packed {
    pub ids: Tensor,
    pub targets: Tensor,
    pub rows: Vec<usize>,
    pub seq: usize,
    prompt_lens: Vec<usize>,
    completion_lens: Vec<usize>,
}

impl Packed {
    pub fn new(seqs: &[Sequence<'_>], rows: Vec<usize>, device: &runtime::Device) -> Result<Self> {
        let t = rows
            .iter()
            .map(|&r| seqs[r].prompt.len() + seqs[r].completion.len())
            .max()
            .unwrap_or(0);
        let b = rows.len();
        let mut ids = vec![0i64; b * t];
        let mut targets = vec![IGNORE; b * t];
        for (i, &r) in rows.iter().enumerate() {
            let s = seqs[r];
            if s.prompt.is_empty() {
                return Err(TrainError::Invalid(format!(
                    "sequence {r} has an empty prompt"
                )));
            }
            let row = &mut ids[i * t..(i + 1) * t];
            for (j, &x) in s.prompt.iter().chain(s.completion).enumerate() {
                row[j] = x as i64;
            }
            // The logit at position p predicts token p + 1.
            for (j, &x) in s.completion.iter().enumerate() {
                targets[i * t + s.prompt.len() + j - 1] = x as i64;
            }
        }
        Ok(Packed {
            ids: Tensor::from_vec(ids, &[b, t])?.to_device(device)?,
            targets: Tensor::from_vec(targets, &[b, t])?.to_device(device)?,
            prompt_lens: rows.iter().map(|&r| seqs[r].prompt.len()).collect(),
            completion_lens: rows.iter().map(|&r| seqs[r].completion.len()).collect(),
            rows,
            seq: t,
        })
    }

    /// Copies the completion log-probs of `logp [B, T]` into the `[n, width]` layout.
    pub fn scatter(&self, logp: &Tensor, out: &mut [f32], width: usize) -> Result<()> {
        let v = logp.to_f32_vec()?;
        let t = self.seq;
        for (i, &r) in self.rows.iter().enumerate() {
            let p = self.prompt_lens[i];
            for j in 0..self.completion_lens[i].min(width) {
                out[r * width + j] = v[i * t + p + j - 1];
            }
        }
        Ok(())
    }

    /// `[B, T]` d loss / d logp from the `[n, width]` layout.
    pub fn gather(&self, grad: &[f32], width: usize, device: &runtime::Device) -> Result<Tensor> {
        let t = self.seq;
        let mut d = vec![0f32; self.rows.len() * t];
        for (i, &r) in self.rows.iter().enumerate() {
            let p = self.prompt_lens[i];
            for j in 0..self.completion_lens[i].min(width) {
                d[i * t + p + j - 1] = grad[r * width + j];
            }
        }
        Ok(Tensor::from_vec(d, &[self.rows.len(), t])?.to_device(device)?)
    }
}

/// Forward state of one micro-batch, kept for its backward.
struct Chunk {
    packed: Packed,
    acts: Activations,
    /// `[B, T]` log-probs (0 off the completion).
    logp: Tensor,
}

fn forward_chunk(
    m: &Llama,
    seqs: &[Sequence<'_>],
    rows: Vec<usize>,
    temperature: f32,
) -> Result<Chunk> {
    let packed = Packed::new(seqs, rows, &m.device)?;
    let (b, t) = (packed.rows.len(), packed.seq);
    let mut acts = Activations::new(&m.config, b, t, false, &m.device)?;
    m.forward(&packed.ids, &mut acts)?;
    let mut logp = Tensor::zeros(&[b, t], DType::F32, &m.device)?;
    ops::token_logprobs_fwd(
        &mut logp,
        &mut acts.lse,
        &acts.logits,
        &packed.targets,
        temperature,
        Some(IGNORE),
    )?;
    Ok(Chunk { packed, acts, logp })
}

pub(crate) fn chunks(n: usize, micro: usize) -> impl Iterator<Item = Vec<usize>> {
    let micro = micro.max(1);
    (0..n.div_ceil(micro)).map(move |c| (c * micro..((c + 1) * micro).min(n)).collect())
}

/// Completion log-probs `[seqs.len(), width]` (row-major, 0 past each completion's end).
pub fn completion_logps(
    m: &Llama,
    seqs: &[Sequence<'_>],
    width: usize,
    temperature: f32,
    micro: usize,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; seqs.len() * width];
    for rows in chunks(seqs.len(), micro) {
        let c = forward_chunk(m, seqs, rows, temperature)?;
        c.packed.scatter(&c.logp, &mut out, width)?;
    }
    Ok(out)
}

/// `grad_of(logp)`, checked to hold one value per log-prob.
pub(crate) fn loss_grad(
    grad_of: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
    logp: &[f32],
) -> Result<Vec<f32>> {
    let grad = grad_of(logp)?;
    if grad.len() != logp.len() {
        return Err(TrainError::Invalid(format!(
            "d loss / d logp has {} values for {} log-probs",
            grad.len(),
            logp.len()
        )));
    }
    Ok(grad)
}

/// The policy-gradient pass: for each micro-batch, forward, fill its rows of the log-probs,
/// ask `grad_of` for d loss / d logp (`[n, width]`, given the log-probs known so far), and
/// backprop it into `grads` (accumulated). `grad_of` may only rely on the rows it is asked
/// about being final: GRPO's per-token gradient depends on that token's log-prob and on the
/// masks alone, so chunking is exact. Returns every completion log-prob.
pub fn policy_backward(
    m: &Llama,
    seqs: &[Sequence<'_>],
    width: usize,
    temperature: f32,
    micro: usize,
    grads: &mut LlamaParams,
    grad_of: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    policy_backward_hooked(
        m,
        seqs,
        width,
        temperature,
        micro,
        grads,
        grad_of,
        &mut NoHook,
    )
}

/// [`policy_backward`] whose last micro-batch tells `hook` as each part of the gradients
/// becomes final (the earlier ones still accumulate into them).
#[allow(clippy::too_many_arguments)]
pub fn policy_backward_hooked(
    m: &Llama,
    seqs: &[Sequence<'_>],
    width: usize,
    temperature: f32,
    micro: usize,
    grads: &mut LlamaParams,
    grad_of: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
    hook: &mut dyn GradHook,
) -> Result<Vec<f32>> {
    let mut logp = vec![0f32; seqs.len() * width];
    let all: Vec<Vec<usize>> = chunks(seqs.len(), micro).collect();
    let n = all.len();
    for (k, rows) in all.into_iter().enumerate() {
        let mut c = forward_chunk(m, seqs, rows, temperature)?;
        c.packed.scatter(&c.logp, &mut logp, width)?;
        let grad = loss_grad(grad_of, &logp)?;
        let dlogp = c.packed.gather(&grad, width, &m.device)?;
        let mut g = GradBuffers::new(&m.config, c.acts.batch, c.acts.seq, &m.device)?;
        ops::token_logprobs_bwd(
            &mut g.d_logits,
            &dlogp,
            &c.acts.logits,
            &c.acts.lse,
            &c.packed.targets,
            temperature,
            Some(IGNORE),
        )?;
        let h: &mut dyn GradHook = if k + 1 == n { &mut *hook } else { &mut NoHook };
        m.backward_from_dlogits_hooked(&c.packed.ids, &mut c.acts, grads, &mut g, h)?;
    }
    Ok(logp)
}

/// A copy of the parameters that shares no storage (a frozen reference, a checkpoint).
pub fn deep_copy(p: &LlamaParams) -> Result<LlamaParams> {
    let mut out = p.clone();
    for t in out.tensors_mut() {
        *t = t.copy()?;
    }
    Ok(out)
}
