//! One tensor-parallel rank's backward: the mirror of the forward's collectives, and the sum
//! of replicated KV weights' gradients.

use runtime::comm::Communicator;
use runtime::{ops, DType, Tensor};

use crate::activations::{Activations, GradBuffers};
use crate::error::Result;
use crate::layers::lm_head::IGNORE;
use crate::model::NoHook;
use crate::params::LlamaParams;
use crate::tp::shard::{KvLayout, Split};
use crate::tp::{vocab, CommReduce, Reduce, TpModel};

impl TpModel {
    /// Backward scratch for `[B, T]` tokens, shaped for this shard.
    pub fn grad_buffers(&self, b: usize, t: usize) -> Result<GradBuffers> {
        GradBuffers::new(&self.plan.local, b, t, &self.local.device)
    }

    /// Zeroed F32 gradients shaped like this rank's shard.
    pub fn zero_grads(&self) -> Result<LlamaParams> {
        self.local.zero_grads()
    }

    /// Backward of `loss_scale * sum(token losses)` after [`TpModel::forward`] and
    /// [`TpModel::loss`]; **accumulates** this shard's gradients into `grads`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        acts: &mut Activations,
        grads: &mut LlamaParams,
        g: &mut GradBuffers,
        loss_scale: f32,
        comm: &mut dyn Communicator,
    ) -> Result<()> {
        let d: Vec<f32> = targets
            .to_vec::<i64>()?
            .iter()
            .map(|&t| if t == IGNORE { 0.0 } else { -loss_scale })
            .collect();
        let dlogp = Tensor::from_vec(d, targets.shape())?;
        self.logprobs_backward(acts, targets, 1.0, &dlogp, g)?;
        self.backward_from_dlogits(ids, acts, grads, g, comm)
    }

    /// Writes `g.d_logits` (this rank's vocabulary columns) from `dlogp`, the gradient of the
    /// log-probs of the last [`TpModel::token_logprobs`] (same `targets` and `temperature`).
    pub fn logprobs_backward(
        &self,
        acts: &Activations,
        targets: &Tensor,
        temperature: f32,
        dlogp: &Tensor,
        g: &mut GradBuffers,
    ) -> Result<()> {
        vocab::token_logprobs_bwd(
            &mut g.d_logits,
            dlogp,
            &acts.logits,
            &acts.lse,
            targets,
            temperature,
            &self.plan.vocab_range(),
            self.plan.full.vocab_size,
        )
    }

    /// Backward of the last forward from this rank's d logits in `g.d_logits`:
    /// **accumulates** this shard's gradients into `grads` (see the module docs of
    /// [`crate::tp`] for replicated K/V weights).
    pub fn backward_from_dlogits(
        &self,
        ids: &Tensor,
        acts: &mut Activations,
        grads: &mut LlamaParams,
        g: &mut GradBuffers,
        comm: &mut dyn Communicator,
    ) -> Result<()> {
        self.check(comm, ids, acts)?;
        self.local
            .backward_layers(acts, grads, g, &mut CommReduce(comm), &mut NoHook)?;
        vocab::embed_backward(
            &mut grads.embed,
            &g.d_resid,
            ids,
            &self.plan.vocab_range(),
            self.plan.full.vocab_size,
            &mut g.d_resid_next,
        )
    }

    /// The whole model's gradient L2 norm (equal on every rank), each parameter counted once:
    /// shards by every rank, the replicated norms by rank 0, a replicated KV head by its first
    /// holder. Call after [`TpModel::reduce_replicated_grads`]; pass the result to
    /// [`AdamW::step_with_norm`](crate::optim::AdamW::step_with_norm) so every rank clips alike.
    pub fn grad_norm(&self, grads: &LlamaParams, comm: &mut dyn Communicator) -> Result<f64> {
        let mut sum = 0f64;
        for ((name, _, split), t) in self.plan.splits().iter().zip(grads.tensors()) {
            let kv = name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight");
            let counted = match split {
                Split::Replicated => self.plan.rank == 0,
                _ if kv => self.plan.kv_owner(),
                _ => true,
            };
            if counted {
                sum += ops::sum_squares(t)?;
            }
        }
        let mut total = Tensor::from_vec(vec![sum as f32], &[1])?;
        CommReduce(comm).all_reduce(&mut total)?;
        Ok((total.to_f32_vec()?[0] as f64).sqrt())
    }

    /// Sums the K/V weight gradients over the ranks that hold copies of the same KV head (a
    /// no-op unless KV heads are replicated), so the copies take identical optimizer steps.
    /// Call once after the last micro-batch's backward, before clipping and the optimizer.
    pub fn reduce_replicated_grads(
        &self,
        grads: &mut LlamaParams,
        comm: &mut dyn Communicator,
    ) -> Result<()> {
        if !matches!(self.plan.kv, KvLayout::Replicated { .. }) {
            return Ok(());
        }
        let c = &self.plan.full;
        let rows = c.head_dim;
        let at = self.plan.first_kv_head() * rows;
        for layer in &mut grads.layers {
            for t in [&mut layer.wk, &mut layer.wv] {
                // Each rank writes its copy at its head's rows of a full-size buffer; the sum
                // then holds, per head, the total over that head's copies.
                let mut all = Tensor::zeros(
                    &[c.num_kv_heads * rows, c.hidden_size],
                    DType::F32,
                    t.device(),
                )?;
                ops::copy_rows(&mut all, at, t)?;
                comm.all_reduce_sum(&mut all)?;
                *t = all.narrow(at, rows)?.copy()?;
            }
        }
        Ok(())
    }
}
