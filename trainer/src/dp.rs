//! Data-parallel gradient synchronisation: every rank holds a full replica and the gradient of
//! its share of the batch; after backward the gradients are summed (or averaged) across ranks.
//!
//! Gradients are packed into flat buckets of a configurable size and each bucket is reduced by
//! one collective, so a model with hundreds of small tensors (norm weights) costs a handful of
//! collectives instead of one each — the latency that dominates on real interconnects. The
//! packing walks the parameters in their canonical order and lets tensors straddle bucket
//! boundaries, so every element is reduced exactly once and the bucket size cannot change the
//! result (each element's sum is still taken in rank order).
//!
//! [`DataParallel::backward_and_sync`] overlaps that all-reduce with the backward (see
//! [`overlap`]): on by default for the CPU communicators, off for NCCL. ZeRO-1 (a
//! reduce-scatter inside its optimizer step) and the tensor-parallel trainer (whose replicated
//! K/V gradients are summed over the TP group after the backward) sync after the backward.

mod overlap;

use std::time::Instant;

use model::model::{GradHook, NoHook};
use model::LlamaParams;
use runtime::comm::{CommError, Communicator, DistEnv, Rendezvous, TcpComm};
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
    let cap = bucket_elements(bucket_bytes)?;
    let mut tensors = grads.tensors_mut();
    for t in &tensors {
        check_f32(t)?;
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

/// F32 elements in a bucket of `bucket_bytes`.
fn bucket_elements(bucket_bytes: usize) -> Result<usize, DpError> {
    match bucket_bytes / DType::F32.size_in_bytes() {
        0 => Err(DpError::Invalid(format!(
            "bucket size {bucket_bytes} bytes holds no f32 element"
        ))),
        cap => Ok(cap),
    }
}

fn check_f32(t: &Tensor) -> Result<(), DpError> {
    if t.dtype() != DType::F32 {
        return Err(DpError::Invalid(format!(
            "gradient of shape {:?} is {:?}, expected F32",
            t.shape(),
            t.dtype()
        )));
    }
    Ok(())
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

/// One rank's handle on a data-parallel group: its communicator plus the bytes it has moved
/// (reported per step in the metrics).
pub struct DataParallel {
    comm: Box<dyn Communicator>,
    /// Keeps the job's rendezvous (rank 0's store server) alive as long as the group.
    _rendezvous: Option<Rendezvous>,
    /// Bucket size of the gradient all-reduce.
    pub bucket_bytes: usize,
    /// Whether [`DataParallel::backward_and_sync`] overlaps the all-reduce with the backward.
    overlap: bool,
    /// Whether the communicator may run on a second thread (CPU groups; not NCCL, whose
    /// communicator and stream belong to the thread holding the device).
    overlap_supported: bool,
    bytes: usize,
    collectives: usize,
}

impl DataParallel {
    pub fn new(comm: Box<dyn Communicator>) -> Self {
        DataParallel {
            comm,
            _rendezvous: None,
            bucket_bytes: DEFAULT_BUCKET_BYTES,
            overlap: true,
            overlap_supported: true,
            bytes: 0,
            collectives: 0,
        }
    }

    /// The group of every process of a job launched with the torchrun environment
    /// (`swerl launch`, torchrun, srun): TCP collectives on CPU, NCCL on `cuda:<LOCAL_RANK>`
    /// with `cuda`. `Ok(None)` when the environment names no job (`RANK`/`WORLD_SIZE` unset).
    pub fn from_env(cuda: bool) -> Result<Option<Self>, DpError> {
        let Some(env) = DistEnv::from_env().map_err(CommError::from)? else {
            return Ok(None);
        };
        let mut rv = Rendezvous::join(env)?;
        let comm: Box<dyn Communicator> = if cuda {
            nccl_comm(&mut rv)?
        } else {
            Box::new(TcpComm::from_rendezvous(&mut rv, "dp")?)
        };
        let mut dp = Self::new(comm);
        dp._rendezvous = Some(rv);
        dp.overlap_supported = !cuda;
        dp.overlap = !cuda;
        Ok(Some(dp))
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    pub fn comm(&mut self) -> &mut dyn Communicator {
        self.comm.as_mut()
    }

    /// This rank's contiguous share of `n` items (rank order, so concatenating the shards
    /// gives back the single-rank order). `n` must divide evenly: every rank then runs the
    /// same number of sequences and the collectives stay in lockstep.
    pub fn shard(&self, n: usize) -> Result<std::ops::Range<usize>, DpError> {
        let w = self.world_size();
        if !n.is_multiple_of(w) {
            return Err(DpError::Invalid(format!(
                "{n} items do not split evenly over {w} data-parallel ranks"
            )));
        }
        let k = n / w;
        Ok(self.rank() * k..(self.rank() + 1) * k)
    }

    /// Every rank's `local` values concatenated in rank order (all ranks must pass the same
    /// count). f64 travels as two f32 halves (high part + rounding remainder), so values come
    /// back to within 2^-48 relative and integers below 2^48 exactly.
    pub fn gather_f64(&mut self, local: &[f64]) -> Result<Vec<f64>, DpError> {
        let w = self.world_size();
        let mut split = Vec::with_capacity(2 * local.len());
        for &x in local {
            let hi = x as f32;
            let lo = if hi.is_finite() {
                (x - hi as f64) as f32
            } else {
                0.0
            };
            split.extend([hi, lo]);
        }
        let n = split.len();
        let input = Tensor::from_vec(split, &[n])?;
        let mut out = Tensor::zeros(&[w * n], DType::F32, &runtime::Device::Cpu)?;
        self.comm.all_gather(&input, &mut out)?;
        self.count(n * DType::F32.size_in_bytes());
        Ok(out
            .as_slice::<f32>()?
            .chunks_exact(2)
            .map(|p| p[0] as f64 + p[1] as f64)
            .collect())
    }

    /// The sum over ranks of `local` (elementwise), taken in rank order in f64 on every rank.
    pub fn sum_f64(&mut self, local: &[f64]) -> Result<Vec<f64>, DpError> {
        let all = self.gather_f64(local)?;
        let mut out = vec![0f64; local.len()];
        for chunk in all.chunks_exact(local.len().max(1)) {
            out.iter_mut().zip(chunk).for_each(|(o, x)| *o += x);
        }
        Ok(out)
    }

    /// Sums the gradients over ranks (callers pre-scale each rank's share).
    pub fn sync_grads(&mut self, grads: &mut LlamaParams) -> Result<SyncStats, DpError> {
        let st = all_reduce_grads_bucketed(self.comm.as_mut(), grads, false, self.bucket_bytes)?;
        self.bytes += st.bytes;
        self.collectives += st.collectives;
        Ok(st)
    }

    /// Whether the gradient all-reduce overlaps the backward (on by default where supported).
    pub fn overlap(&self) -> bool {
        self.overlap
    }

    /// Switches the overlap of the gradient all-reduce with the backward; an error where the
    /// communicator cannot run on a second thread (NCCL).
    pub fn set_overlap(&mut self, on: bool) -> Result<(), DpError> {
        if on && !self.overlap_supported {
            return Err(DpError::Invalid(
                "overlapping the gradient all-reduce with backward needs a CPU communicator \
                 (tcp or in-process threads); NCCL syncs after the backward"
                    .into(),
            ));
        }
        self.overlap = on;
        Ok(())
    }

    /// Runs `backward` (the last one before the optimizer step; it must pass the hook on to
    /// the model's backward) and sums the gradients over ranks: with overlap while the
    /// backward runs, else after it. Callers pre-scale each rank's share. Returns the
    /// backward's result and the seconds the caller waited for the sync after the backward.
    pub fn backward_and_sync<R, E: From<DpError>>(
        &mut self,
        grads: &mut LlamaParams,
        backward: impl FnOnce(&mut LlamaParams, &mut dyn GradHook) -> Result<R, E>,
    ) -> Result<(R, f64), E> {
        if !self.overlap {
            let r = backward(grads, &mut NoHook)?;
            let t0 = Instant::now();
            self.sync_grads(grads)?;
            return Ok((r, t0.elapsed().as_secs_f64()));
        }
        let (r, st, wait) =
            overlap::backward_and_reduce(self.comm.as_mut(), grads, self.bucket_bytes, backward)?;
        self.record(st);
        Ok((r, wait))
    }

    /// Adds a collective's volume to this step's report (ZeRO-1's reduce-scatters and
    /// all-gathers).
    pub fn record(&mut self, st: SyncStats) {
        self.bytes += st.bytes;
        self.collectives += st.collectives;
    }

    fn count(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.collectives += 1;
    }

    /// (bytes this rank contributed, collectives) since the last call.
    pub fn take_volume(&mut self) -> (usize, usize) {
        let v = (self.bytes, self.collectives);
        self.bytes = 0;
        self.collectives = 0;
        v
    }
}

#[cfg(feature = "cuda")]
fn nccl_comm(rv: &mut Rendezvous) -> Result<Box<dyn Communicator>, DpError> {
    Ok(Box::new(runtime::comm::NcclComm::from_rendezvous(
        rv, "dp",
    )?))
}

#[cfg(not(feature = "cuda"))]
fn nccl_comm(_: &mut Rendezvous) -> Result<Box<dyn Communicator>, DpError> {
    Err(DpError::Invalid(
        "NCCL needs a build with `--features cuda`".into(),
    ))
}
