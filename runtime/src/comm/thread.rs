//! In-process ranks: a shared rendezvous buffer guarded by a mutex and a condition variable
//! (see the parent module's docs for the protocol).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::call::Call;
use super::{CommError, Communicator, DEFAULT_TIMEOUT};
use crate::{DType, Tensor};

struct State {
    /// Index of the round being assembled; a rank's own counter says which round it is in.
    round: u64,
    slots: Vec<Option<(Call, Vec<f32>)>>,
    /// The published result of the current round (`None` while collecting).
    result: Option<Result<Arc<Vec<f32>>, String>>,
    read: Vec<bool>,
    dead: Vec<bool>,
}

struct Shared {
    world: usize,
    timeout: Duration,
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover the data if a poisoned lock ever
        // shows up rather than turning one failure into a cascade of panics.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Constructs an in-process group; see [`ThreadGroup::new`].
pub struct ThreadGroup;

impl ThreadGroup {
    /// One communicator per rank (index = rank), with the default timeout. Move each into
    /// its own thread.
    // The group has no state of its own once built: the ranks' communicators are the group.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(world_size: usize) -> Result<Vec<ThreadComm>, CommError> {
        Self::with_timeout(world_size, DEFAULT_TIMEOUT)
    }

    /// As [`ThreadGroup::new`], failing a collective after `timeout` without all peers.
    pub fn with_timeout(
        world_size: usize,
        timeout: Duration,
    ) -> Result<Vec<ThreadComm>, CommError> {
        if world_size == 0 {
            return Err(CommError::Group("world size must be at least 1".into()));
        }
        let shared = Arc::new(Shared {
            world: world_size,
            timeout,
            state: Mutex::new(State {
                round: 0,
                slots: vec![None; world_size],
                result: None,
                read: vec![false; world_size],
                dead: vec![false; world_size],
            }),
            cv: Condvar::new(),
        });
        Ok((0..world_size)
            .map(|rank| ThreadComm {
                rank,
                round: 0,
                shared: shared.clone(),
            })
            .collect())
    }
}

/// One rank of a [`ThreadGroup`]. Dropping it tells the other ranks this rank is gone.
pub struct ThreadComm {
    rank: usize,
    round: u64,
    shared: Arc<Shared>,
}

impl Drop for ThreadComm {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.dead[self.rank] = true;
        self.shared.cv.notify_all();
    }
}

fn ranks_where(flags: impl Iterator<Item = bool>) -> Vec<usize> {
    flags
        .enumerate()
        .filter_map(|(r, f)| f.then_some(r))
        .collect()
}

impl ThreadComm {
    /// Waits on the condition variable until `ready(state)`; `missing(state)` lists the ranks
    /// being waited for, used to fail fast when one of them is dead and to name them.
    fn wait_until<'a>(
        &self,
        op: &'static str,
        deadline: Instant,
        mut st: MutexGuard<'a, State>,
        ready: impl Fn(&State) -> bool,
        missing: impl Fn(&State) -> Vec<usize>,
    ) -> Result<MutexGuard<'a, State>, CommError> {
        loop {
            if ready(&st) {
                return Ok(st);
            }
            let waiting_for = missing(&st);
            let gone: Vec<usize> = waiting_for
                .iter()
                .copied()
                .filter(|&r| st.dead[r])
                .collect();
            if !gone.is_empty() {
                return Err(CommError::PeerGone {
                    op,
                    rank: self.rank,
                    missing: gone,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CommError::Timeout {
                    op,
                    rank: self.rank,
                    timeout: self.shared.timeout,
                    missing: waiting_for,
                });
            }
            st = self
                .shared
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// One round: deposit `data`, wait for every rank, return the shared result.
    fn exchange(&mut self, call: Call, data: Vec<f32>) -> Result<Arc<Vec<f32>>, CommError> {
        let op = call.name();
        let (rank, round) = (self.rank, self.round);
        let deadline = Instant::now() + self.shared.timeout;
        let st = self.shared.lock();
        // The previous round may still be being read by slower ranks.
        let mut st = self.wait_until(
            op,
            deadline,
            st,
            |s| s.round == round,
            |s| ranks_where(s.read.iter().map(|r| !r)),
        )?;
        st.slots[rank] = Some((call, data));
        if st.slots.iter().all(Option::is_some) {
            st.result = Some(combine(&st.slots, self.shared.world));
            self.shared.cv.notify_all();
        }
        let mut st = self.wait_until(
            op,
            deadline,
            st,
            |s| s.result.is_some(),
            |s| ranks_where(s.slots.iter().map(Option::is_none)),
        )?;
        let result = st.result.clone().expect("checked by wait_until");
        st.read[rank] = true;
        if st.read.iter().all(|&r| r) {
            st.round += 1;
            st.result = None;
            st.slots.iter_mut().for_each(|s| *s = None);
            st.read.iter_mut().for_each(|r| *r = false);
            self.shared.cv.notify_all();
        }
        drop(st);
        self.round += 1;
        result.map_err(|msg| CommError::Mismatch { op, rank, msg })
    }

    fn load(&self, op: &'static str, t: &Tensor) -> Result<Vec<f32>, CommError> {
        self.check_dtype(op, t)?;
        Ok(t.to_f32_vec()?)
    }

    fn check_dtype(&self, op: &'static str, t: &Tensor) -> Result<(), CommError> {
        match t.dtype() {
            DType::F32 | DType::BF16 | DType::F16 => Ok(()),
            dtype => Err(CommError::DType {
                op,
                rank: self.rank,
                dtype,
            }),
        }
    }

    fn store(&self, op: &'static str, t: &mut Tensor, values: &[f32]) -> Result<(), CommError> {
        self.check_dtype(op, t)?;
        t.with_f32_mut(op, false, |s| {
            s.copy_from_slice(values);
            Ok(())
        })?;
        Ok(())
    }

    fn mismatch(&self, op: &'static str, msg: String) -> CommError {
        CommError::Mismatch {
            op,
            rank: self.rank,
            msg,
        }
    }
}

/// Computes a round's result from every rank's deposit (run once, by the last arrival).
fn combine(slots: &[Option<(Call, Vec<f32>)>], world: usize) -> Result<Arc<Vec<f32>>, String> {
    let deposits: Vec<&(Call, Vec<f32>)> = slots.iter().flatten().collect();
    let first = deposits[0].0;
    if let Some((r, (c, _))) = deposits.iter().enumerate().find(|(_, d)| d.0 != first) {
        return Err(format!(
            "ranks disagree: rank 0 called {first:?}, rank {r} called {c:?}"
        ));
    }
    let sum = || {
        // Rank order, one thread: the same bits on every rank and every run.
        let mut acc = deposits[0].1.clone();
        for (_, d) in &deposits[1..] {
            acc.iter_mut().zip(d).for_each(|(a, x)| *a += x);
        }
        acc
    };
    Ok(Arc::new(match first {
        Call::AllReduce { .. } | Call::ReduceScatter { .. } => sum(),
        Call::AllGather { numel } => {
            let mut out = Vec::with_capacity(numel * world);
            deposits.iter().for_each(|(_, d)| out.extend_from_slice(d));
            out
        }
        Call::Broadcast { root, .. } => deposits[root].1.clone(),
        Call::Barrier => Vec::new(),
    }))
}

impl Communicator for ThreadComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world
    }

    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "all_reduce_sum";
        let data = self.load(OP, t)?;
        let r = self.exchange(Call::AllReduce { numel: data.len() }, data)?;
        self.store(OP, t, &r)
    }

    fn all_gather(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "all_gather";
        let n = input.numel();
        if output.numel() != n * self.shared.world {
            return Err(self.mismatch(
                OP,
                format!(
                    "output {:?} does not hold {} ranks x input {:?}",
                    output.shape(),
                    self.shared.world,
                    input.shape()
                ),
            ));
        }
        self.check_dtype(OP, output)?;
        let data = self.load(OP, input)?;
        let r = self.exchange(Call::AllGather { numel: n }, data)?;
        self.store(OP, output, &r)
    }

    fn reduce_scatter_sum(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "reduce_scatter_sum";
        let n = output.numel();
        if input.numel() != n * self.shared.world {
            return Err(self.mismatch(
                OP,
                format!(
                    "input {:?} is not {} ranks x output {:?}",
                    input.shape(),
                    self.shared.world,
                    output.shape()
                ),
            ));
        }
        self.check_dtype(OP, output)?;
        let data = self.load(OP, input)?;
        let r = self.exchange(Call::ReduceScatter { numel: data.len() }, data)?;
        let start = self.rank * n;
        self.store(OP, output, &r[start..start + n])
    }

    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        const OP: &str = "broadcast";
        if root >= self.shared.world {
            return Err(self.mismatch(
                OP,
                format!("root {root} is not a rank of {}", self.shared.world),
            ));
        }
        self.check_dtype(OP, t)?;
        let numel = t.numel();
        let data = if self.rank == root {
            self.load(OP, t)?
        } else {
            Vec::new()
        };
        let r = self.exchange(Call::Broadcast { numel, root }, data)?;
        if self.rank != root {
            self.store(OP, t, &r)?;
        }
        Ok(())
    }

    fn barrier(&mut self) -> Result<(), CommError> {
        self.exchange(Call::Barrier, Vec::new()).map(|_| ())
    }
}
