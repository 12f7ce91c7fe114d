//! Data-parallel gradient synchronisation: every rank holds a full replica and the gradient of
//! its share of the batch; after backward the gradients are summed (or averaged) across ranks.
//!
//! Gradients are packed into flat buckets of a configurable size and each bucket is reduced by
//! one collective, so a model with hundreds of small tensors (norm weights) costs a handful of
//! collectives instead of one each — the latency that dominates on real interconnects. The
//! packing walks the parameters in their canonical order and lets tensors straddle bucket
//! boundaries, so every element is reduced exactly once and the bucket size cannot change the
//! result (each element's sum is still taken in rank order).

use model::LlamaParams;
use runtime::comm::{CommError, Communicator};
use runtime::{DType, Tensor};

/// PyTorch DDP's default bucket size: large enough that per-collective latency is amortised.
pub const DEFAULT_BUCKET_BYTES: usize = 25 << 20;

/// Errors of gradient synchronisation.
#[derive(Debug, thiserror::Error)]
pub enum DpError {
    #[error("dp gradient all-reduce: {0}")]
    Comm(#[from] CommError),
    #[error("dp gradient all-reduce: {0}")]
    Tensor(#[from] runtime::Error),
    #[error("dp gradient all-reduce: {0}")]
    Invalid(String),
}

/// What one synchronisation moved (for the trainer's communication-volume report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Collectives issued (one per bucket).
    pub collectives: usize,
    /// Gradient elements reduced (the model's parameter count).
    pub elements: usize,
    /// Bytes each rank contributed to all-reduces (f32 payload).
    pub bytes: usize,
}

/// All-reduces every gradient tensor with [`DEFAULT_BUCKET_BYTES`] buckets; with `average` the
/// sum is divided by the world size (the mean of per-rank mean-loss gradients).
pub fn all_reduce_grads(
    comm: &mut dyn Communicator,
    grads: &mut LlamaParams,
    average: bool,
) -> Result<SyncStats, DpError> {
    all_reduce_grads_bucketed(comm, grads, average, DEFAULT_BUCKET_BYTES)
}

/// As [`all_reduce_grads`] with buckets of `bucket_bytes` (at least one f32 element).
/// Gradients must be F32 (the model accumulates them in F32).
pub fn all_reduce_grads_bucketed(
    comm: &mut dyn Communicator,
    grads: &mut LlamaParams,
    average: bool,
    bucket_bytes: usize,
) -> Result<SyncStats, DpError> {
    let cap = bucket_bytes / DType::F32.size_in_bytes();
    if cap == 0 {
        return Err(DpError::Invalid(format!(
            "bucket size {bucket_bytes} bytes holds no f32 element"
        )));
    }
    let mut tensors = grads.tensors_mut();
    for t in &tensors {
        if t.dtype() != DType::F32 {
            return Err(DpError::Invalid(format!(
                "gradient of shape {:?} is {:?}, expected F32",
                t.shape(),
                t.dtype()
            )));
        }
    }
    let total: usize = tensors.iter().map(|t| t.numel()).sum();
    let scale = if average {
        1.0 / comm.world_size() as f32
    } else {
        1.0
    };
    let mut stats = SyncStats {
        elements: total,
        bytes: total * DType::F32.size_in_bytes(),
        ..SyncStats::default()
    };
    // Cursor over (tensor, element offset) walking all gradients in canonical order.
    let (mut ti, mut off) = (0usize, 0usize);
    let mut done = 0usize;
    while done < total {
        let len = cap.min(total - done);
        let mut bucket = Tensor::zeros(&[len], DType::F32, &runtime::Device::Cpu)?;
        let segments = segments_from(&tensors, ti, off, len);
        {
            let buf = bucket.as_mut_slice::<f32>()?;
            let mut at = 0;
            for &(i, o, n) in &segments {
                buf[at..at + n].copy_from_slice(&tensors[i].as_slice::<f32>()?[o..o + n]);
                at += n;
            }
        }
        comm.all_reduce_sum(&mut bucket)?;
        stats.collectives += 1;
        let buf = bucket.as_slice::<f32>()?;
        let mut at = 0;
        for &(i, o, n) in &segments {
            let dst = &mut tensors[i].as_mut_slice::<f32>()?[o..o + n];
            dst.iter_mut()
                .zip(&buf[at..at + n])
                .for_each(|(d, s)| *d = s * scale);
            at += n;
        }
        if let Some(&(i, o, n)) = segments.last() {
            (ti, off) = (i, o + n);
        }
        done += len;
    }
    Ok(stats)
}

/// The `(tensor index, offset, length)` pieces covering `len` elements from `(ti, off)`.
fn segments_from(
    tensors: &[&mut Tensor],
    mut ti: usize,
    mut off: usize,
    mut len: usize,
) -> Vec<(usize, usize, usize)> {
    let mut segs = Vec::new();
    while len > 0 {
        let avail = tensors[ti].numel() - off;
        if avail == 0 {
            ti += 1;
            off = 0;
            continue;
        }
        let n = avail.min(len);
        segs.push((ti, off, n));
        off += n;
        len -= n;
    }
    segs
}
