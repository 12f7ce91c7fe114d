//! The policy passes of [`policy`](super::policy) on one tensor-parallel rank's shard: the
//! same packing and micro-batching, with the vocab-parallel log-probs (a max and two sums per
//! token, never the full logits) and the sharded backward. Every rank of a TP group calls these
//! with the same sequences and gets the same log-probs.

use model::tp::TpModel;
use model::LlamaParams;
use runtime::comm::Communicator;
use runtime::{DType, Tensor};

use super::policy::{chunks, loss_grad, Packed, Sequence};
use super::Result;

/// Forward of one micro-batch on the shard: its packing, activations and `[B, T]` log-probs.
fn forward_chunk(
    m: &TpModel,
    seqs: &[Sequence<'_>],
    rows: Vec<usize>,
    temperature: f32,
    comm: &mut dyn Communicator,
) -> Result<(Packed, model::Activations, Tensor)> {
    let device = m.local.device;
    let packed = Packed::new(seqs, rows, &device)?;
    let (b, t) = (packed.rows.len(), packed.seq);
    let mut acts = m.activations(b, t, false)?;
    m.forward(&packed.ids, &mut acts, comm)?;
    let mut logp = Tensor::zeros(&[b, t], DType::F32, &device)?;
    m.token_logprobs(&mut acts, &packed.targets, temperature, &mut logp, comm)?;
    Ok((packed, acts, logp))
}

/// As [`completion_logps`](super::policy::completion_logps) on a shard.
pub fn completion_logps(
    m: &TpModel,
    seqs: &[Sequence<'_>],
    width: usize,
    temperature: f32,
    micro: usize,
    comm: &mut dyn Communicator,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; seqs.len() * width];
    for rows in chunks(seqs.len(), micro) {
        let (packed, _, logp) = forward_chunk(m, seqs, rows, temperature, comm)?;
        packed.scatter(&logp, &mut out, width)?;
    }
    Ok(out)
}

/// As [`policy_backward`](super::policy::policy_backward) on a shard: accumulates this rank's
/// shard gradients (replicated K/V copies still partial, see
/// [`TpModel::reduce_replicated_grads`]).
#[allow(clippy::too_many_arguments)]
pub fn policy_backward(
    m: &TpModel,
    seqs: &[Sequence<'_>],
    width: usize,
    temperature: f32,
    micro: usize,
    grads: &mut LlamaParams,
    grad_of: &mut dyn FnMut(&[f32]) -> Result<Vec<f32>>,
    comm: &mut dyn Communicator,
) -> Result<Vec<f32>> {
    let device = m.local.device;
    let mut logp = vec![0f32; seqs.len() * width];
    for rows in chunks(seqs.len(), micro) {
        let (packed, mut acts, lp) = forward_chunk(m, seqs, rows, temperature, comm)?;
        packed.scatter(&lp, &mut logp, width)?;
        let grad = loss_grad(grad_of, &logp)?;
        let dlogp = packed.gather(&grad, width, &device)?;
        let mut g = m.grad_buffers(acts.batch, acts.seq)?;
        m.logprobs_backward(&acts, &packed.targets, temperature, &dlogp, &mut g)?;
        m.backward_from_dlogits(&packed.ids, &mut acts, grads, &mut g, comm)?;
    }
    Ok(logp)
}
