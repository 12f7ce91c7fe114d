//! Collective communication between ranks (data/tensor parallelism).
//!
//! [`Communicator`] is the interface every parallel path is written against: all-reduce (sum),
//! all-gather, reduce-scatter (sum), broadcast and barrier over the runtime's [`Tensor`]s.
//!
//! [`ThreadGroup`] is the in-process implementation: one communicator per rank, each used from
//! its own thread, so every parallel code path can run (and be tested) on a CPU-only machine.
//!
//! ## Design of the in-process group
//! - **One shared rendezvous buffer, one round per collective.** Every rank deposits its
//!   contribution (converted to f32) in its slot; the last rank to arrive checks that all
//!   ranks called the same collective with matching sizes, computes the result once, and
//!   publishes it; every rank copies it out; the last reader opens the next round. A rank that
//!   runs ahead waits for the round to open, so collectives can be issued back to back.
//! - **Deterministic.** Sums are taken in rank order (0, 1, ..., n-1) by a single thread and
//!   every rank copies the same buffer, so all ranks get bit-identical results whatever the
//!   thread timing — the property that lets data-parallel replicas stay in lockstep.
//! - **Never a silent hang.** Dropping a communicator (including during a panic's unwinding)
//!   marks its rank dead and wakes the others; waiting past the group's timeout (default
//!   [`DEFAULT_TIMEOUT`]) fails too. Both errors name the collective and the missing rank(s).
//! - Float dtypes (F32, BF16, F16) are accepted; BF16/F16 sums accumulate in f32 and round once.
//!   Integer tensors are rejected with [`CommError::DType`].

//!
//! Across processes: [`env::DistEnv`] reads the torchrun-style environment, [`store`] is the
//! TCP key-value store rank 0 serves for the rendezvous, [`TcpComm`] runs the collectives over
//! TCP on CPUs, and `NcclComm` (feature `cuda`) on GPUs; [`MeshGroups`] splits a job into
//! the tensor- and data-parallel sub-groups of a `tp × dp` mesh.

mod call;
pub mod env;
mod mesh;
#[cfg(feature = "cuda")]
mod nccl;
pub mod store;
mod tcp;
mod thread;
mod wire;

use std::time::Duration;

use crate::{DType, Tensor};

pub use env::{DistEnv, EnvError};
pub use mesh::{Backend, MeshGroups, SubGroup};
#[cfg(feature = "cuda")]
pub use nccl::{unavailable_reason as nccl_unavailable_reason, NcclComm};
pub use store::{Rendezvous, StoreClient, StoreServer};
pub use tcp::TcpComm;
pub use thread::{ThreadComm, ThreadGroup};

/// How long an in-process rank waits for its peers before failing, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of collective operations; each names the collective and the rank(s) involved.
#[derive(Debug, thiserror::Error)]
pub enum CommError {
    /// A peer's communicator was dropped (its thread finished early or panicked).
    #[error("{op} on rank {rank}: rank(s) {missing:?} left the group (communicator dropped or thread panicked)")]
    PeerGone {
        op: &'static str,
        rank: usize,
        missing: Vec<usize>,
    },
    /// Peers did not arrive within the timeout.
    #[error("{op} on rank {rank}: timed out after {timeout:?} waiting for rank(s) {missing:?}")]
    Timeout {
        op: &'static str,
        rank: usize,
        timeout: Duration,
        missing: Vec<usize>,
    },
    /// Ranks disagree on the collective or its sizes, or a local shape does not fit.
    #[error("{op} on rank {rank}: {msg}")]
    Mismatch {
        op: &'static str,
        rank: usize,
        msg: String,
    },
    /// A dtype the collective does not support.
    #[error("{op} on rank {rank}: unsupported dtype {dtype:?} (float tensors only)")]
    DType {
        op: &'static str,
        rank: usize,
        dtype: DType,
    },
    /// Invalid group construction (e.g. world size 0).
    #[error("communicator group: {0}")]
    Group(String),
    /// Reading or writing the tensor failed (e.g. shared storage, not on host).
    #[error(transparent)]
    Tensor(#[from] crate::Error),
    /// A malformed rendezvous environment.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The rendezvous (store or group connection) failed.
    #[error("rendezvous on rank {rank}: {msg}")]
    Rendezvous { rank: usize, msg: String },
    /// The GPU collective library failed or is missing.
    #[error("{op} on rank {rank}: {msg}")]
    Backend {
        op: &'static str,
        rank: usize,
        msg: String,
    },
}

pub(crate) fn check_dtype(op: &'static str, rank: usize, t: &Tensor) -> Result<(), CommError> {
    match t.dtype() {
        DType::F32 | DType::BF16 | DType::F16 => Ok(()),
        dtype => Err(CommError::DType { op, rank, dtype }),
    }
}

/// A float tensor's values as f32 (the wire format of the CPU groups).
pub(crate) fn load(op: &'static str, rank: usize, t: &Tensor) -> Result<Vec<f32>, CommError> {
    check_dtype(op, rank, t)?;
    Ok(t.to_f32_vec()?)
}

pub(crate) fn store(
    op: &'static str,
    rank: usize,
    t: &mut Tensor,
    values: &[f32],
) -> Result<(), CommError> {
    check_dtype(op, rank, t)?;
    if values.len() != t.numel() {
        return Err(CommError::Mismatch {
            op,
            rank,
            msg: format!(
                "received {} values for a tensor of shape {:?}",
                values.len(),
                t.shape()
            ),
        });
    }
    t.with_f32_mut(op, false, |s| {
        s.copy_from_slice(values);
        Ok(())
    })?;
    Ok(())
}

/// `big.numel() == world * small.numel()` (all-gather output, reduce-scatter input).
pub(crate) fn check_gather(
    op: &'static str,
    rank: usize,
    world: usize,
    small: &Tensor,
    big: &Tensor,
) -> Result<(), CommError> {
    if big.numel() != world * small.numel() {
        return Err(CommError::Mismatch {
            op,
            rank,
            msg: format!(
                "{:?} does not hold {world} ranks x {:?}",
                big.shape(),
                small.shape()
            ),
        });
    }
    check_dtype(op, rank, small)?;
    check_dtype(op, rank, big)
}

/// Collectives over one group of ranks. Every rank must call the same collectives in the same
/// order (as with NCCL/MPI); results are identical on every rank.
pub trait Communicator: Send {
    /// This rank's index in `0..world_size()`.
    fn rank(&self) -> usize;
    /// Number of ranks in the group.
    fn world_size(&self) -> usize;
    /// `t <- sum over ranks of t` (elementwise; same shape on every rank).
    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CommError>;
    /// `output <- concat(input of rank 0, ..., input of rank n-1)` in row-major element order
    /// (so concatenation along dim 0); `output.numel() == world_size * input.numel()`.
    fn all_gather(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError>;
    /// `output <- chunk rank of (sum over ranks of input)`, chunks taken along the flattened
    /// input; `input.numel() == world_size * output.numel()`.
    fn reduce_scatter_sum(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError>;
    /// `t <- t of rank root` on every rank.
    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CommError>;
    /// Returns once every rank has entered the barrier.
    fn barrier(&mut self) -> Result<(), CommError>;
}
