//! Communication volume of tensor parallelism: a [`Communicator`] wrapper that counts what
//! passes through it, and the volume one training step should move (the two must agree).

use runtime::comm::{CommError, Communicator};
use runtime::Tensor;

use crate::config::LlamaConfig;

/// Calls and payload bytes (this rank's contribution) per collective.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommCounts {
    pub all_reduce_calls: usize,
    pub all_reduce_bytes: usize,
    pub all_gather_calls: usize,
    pub all_gather_bytes: usize,
    pub other_calls: usize,
    pub other_bytes: usize,
}

/// Wraps a communicator and counts every collective issued through it.
pub struct CountingComm<'a> {
    inner: &'a mut dyn Communicator,
    pub counts: CommCounts,
}

impl<'a> CountingComm<'a> {
    pub fn new(inner: &'a mut dyn Communicator) -> Self {
        CountingComm {
            inner,
            counts: CommCounts::default(),
        }
    }
}

impl Communicator for CountingComm<'_> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn world_size(&self) -> usize {
        self.inner.world_size()
    }

    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CommError> {
        self.counts.all_reduce_calls += 1;
        self.counts.all_reduce_bytes += t.size_in_bytes();
        self.inner.all_reduce_sum(t)
    }

    fn all_gather(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        self.counts.all_gather_calls += 1;
        self.counts.all_gather_bytes += input.size_in_bytes();
        self.inner.all_gather(input, output)
    }

    fn reduce_scatter_sum(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        self.counts.other_calls += 1;
        self.counts.other_bytes += input.size_in_bytes();
        self.inner.reduce_scatter_sum(input, output)
    }

    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        self.counts.other_calls += 1;
        self.counts.other_bytes += t.size_in_bytes();
        self.inner.broadcast(t, root)
    }

    fn barrier(&mut self) -> Result<(), CommError> {
        self.counts.other_calls += 1;
        self.inner.barrier()
    }
}

/// Bytes one rank contributes to the collectives of one training step (forward, loss,
/// backward) on `[B, T]` tokens with F32 activations, at `tp > 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommVolume {
    /// Per decoder layer: two `[B, T, C]` all-reduces forward (after attention, after the
    /// MLP), two backward (`d ln1`, `d ln2`), two more forward again under recompute.
    pub per_layer_all_reduce_bytes: usize,
    pub per_layer_all_reduce_calls: usize,
    /// Embedding forward + final norm's input gradient: two `[B, T, C]` all-reduces.
    pub ends_all_reduce_bytes: usize,
    /// The vocabulary-parallel loss: one fused all-reduce of two values per token…
    pub loss_all_reduce_bytes: usize,
    /// …and one all-gather of one value per token (the max).
    pub loss_all_gather_bytes: usize,
    pub total_all_reduce_bytes: usize,
    pub total_all_reduce_calls: usize,
}

impl CommVolume {
    pub fn training_step(c: &LlamaConfig, b: usize, t: usize, recompute: bool) -> Self {
        let act = b * t * c.hidden_size * 4;
        let per_layer_calls = if recompute { 6 } else { 4 };
        let per_layer = per_layer_calls * act;
        let ends = 2 * act;
        let loss = 2 * b * t * 4;
        CommVolume {
            per_layer_all_reduce_bytes: per_layer,
            per_layer_all_reduce_calls: per_layer_calls,
            ends_all_reduce_bytes: ends,
            loss_all_reduce_bytes: loss,
            loss_all_gather_bytes: b * t * 4,
            total_all_reduce_bytes: c.num_layers * per_layer + ends + loss,
            total_all_reduce_calls: c.num_layers * per_layer_calls + 3,
        }
    }
}
