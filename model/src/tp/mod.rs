//! Megatron-LM tensor parallelism over a [`Communicator`].
//!
//! A rank's shard is an ordinary [`Llama`](crate::Llama) with a *local* config (`H/tp` query
//! heads, its KV heads, `F/tp` MLP columns, `V/tp` vocabulary rows) run through the same layer
//! functions as a single-process model; the collectives sit at Megatron's points:
//! - `q/k/v` and `gate/up` are column-parallel (rows of the HF `[out, in]` weight), `o_proj` and
//!   `down_proj` row-parallel (columns): [`block`](crate::layers::block) all-reduces the
//!   attention and the MLP output in the forward, and `d ln1` / `d ln2` (the column-parallel
//!   layers' input gradient) in the backward. Summing `d ln` *before* each norm's backward
//!   makes the replicated norm weights' gradients whole and identical on every rank.
//! - KV heads are split when `num_kv_heads % tp == 0`; replicated when `tp % num_kv_heads == 0`
//!   (each rank keeps the one KV head its query heads read, as vLLM and Megatron do). A
//!   replicated K/V weight's gradient is then partial on each of the `tp / num_kv_heads` ranks
//!   sharing it: [`TpModel::reduce_replicated_grads`] sums it across them (call it once per
//!   optimizer step, like the data-parallel all-reduce), and [`gather`](load::gather) with
//!   [`Replicas::Partial`] sums it when assembling full-shape gradients.
//! - The vocabulary is split in contiguous ranges (no padding: `vocab_size % tp` must be 0).
//!   The embedding looks up its range and all-reduces; the LM head (tied or not) produces
//!   `[.., V/tp]` logits and [`vocab`] computes log-probs / cross-entropy from a max and two
//!   sums per token, never gathering the full logits.
//!
//! [`run_ranks`] runs one rank per thread over an in-process
//! [`ThreadGroup`](runtime::comm::ThreadGroup).
//!
//! Limits: the vocab-range masks and the loss's per-row fix-ups touch `N` values on the host,
//! so a rank's activations must be CPU tensors (a CUDA port would add two tiny kernels);
//! a checkpoint streams one full tensor at a time through every rank (rank 0 writes it), so
//! each rank briefly holds the largest tensor, never the model. Resuming copies a rank's slices
//! of the AdamW state straight out of the mapped optimizer file ([`state`]), as loading does
//! for the weights, so no rank reads the whole state.

mod backward;
mod forward;
mod generate;
mod group;
pub mod load;
mod save;
pub mod shard;
pub mod state;
pub mod vocab;
pub mod volume;

use runtime::comm::Communicator;
use runtime::Tensor;

use crate::error::Result;

pub use forward::TpModel;
pub use group::{run_ranks, RankCtx};
pub use load::{gather, save_file, Replicas};
pub use shard::{KvLayout, ShardPlan, Split};
pub use volume::{CommVolume, CountingComm};

/// Where a layer joins its tensor-parallel peers (see the module docs).
pub trait Reduce {
    /// Whether this rank adds the residual stream to its partial output; exactly one rank of
    /// a group does, so the all-reduce counts it once.
    fn owns_residual(&self) -> bool;
    /// `t <- sum over ranks of t`.
    fn all_reduce(&mut self, t: &mut Tensor) -> Result<()>;
}

/// A single process: the residual is ours and there is nothing to sum.
pub struct Alone;

impl Reduce for Alone {
    fn owns_residual(&self) -> bool {
        true
    }

    fn all_reduce(&mut self, _t: &mut Tensor) -> Result<()> {
        Ok(())
    }
}

/// A tensor-parallel rank's [`Reduce`]: rank 0 owns the residual.
pub struct CommReduce<'a>(pub &'a mut dyn Communicator);

impl Reduce for CommReduce<'_> {
    fn owns_residual(&self) -> bool {
        self.0.rank() == 0
    }

    fn all_reduce(&mut self, t: &mut Tensor) -> Result<()> {
        if self.0.world_size() > 1 {
            self.0.all_reduce_sum(t)?;
        }
        Ok(())
    }
}
