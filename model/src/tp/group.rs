//! Running a tensor-parallel group in one process: one thread per rank over a
//! [`ThreadGroup`].

use std::time::Duration;

use runtime::comm::{CommError, Communicator, ThreadGroup, DEFAULT_TIMEOUT};

use crate::error::{ModelError, Result};

/// What one rank's closure gets: its index and its communicator.
pub struct RankCtx {
    pub rank: usize,
    pub tp: usize,
    pub comm: Box<dyn Communicator>,
}

/// Runs `f` once per rank of a `tp`-rank in-process group (one thread each) and returns the
/// ranks' results in rank order. If any rank fails, the error returned is the first rank's
/// own failure rather than a peer's "rank left the group" that it caused.
pub fn run_ranks<T, F>(tp: usize, f: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(RankCtx) -> Result<T> + Sync,
{
    run_ranks_with_timeout(tp, DEFAULT_TIMEOUT, f)
}

/// [`run_ranks`] whose collectives fail after `timeout` without every peer.
pub fn run_ranks_with_timeout<T, F>(tp: usize, timeout: Duration, f: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(RankCtx) -> Result<T> + Sync,
{
    let comms = ThreadGroup::with_timeout(tp, timeout)?;
    let results: Vec<Result<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = comms
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                let f = &f;
                s.spawn(move || {
                    f(RankCtx {
                        rank,
                        tp,
                        comm: Box::new(comm),
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(rank, h)| {
                h.join().unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(ModelError::TensorParallel(format!(
                        "rank {rank} panicked: {msg}"
                    )))
                })
            })
            .collect()
    });
    let secondary = |e: &ModelError| matches!(e, ModelError::Comm(CommError::PeerGone { .. }));
    if let Some(i) = results
        .iter()
        .position(|r| r.as_ref().is_err_and(|e| !secondary(e)))
        .or_else(|| results.iter().position(Result::is_err))
    {
        let e = results.into_iter().nth(i).and_then(Result::err);
        return Err(e.expect("position found an error"));
    }
    Ok(results.into_iter().map(|r| r.expect("no errors")).collect())
}
