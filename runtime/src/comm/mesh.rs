//! Sub-group communicators of a launched job (one rank per process): the tensor-parallel and
//! data-parallel groups of this rank in a `tp × dp` mesh, built over the job's rendezvous.
//!
//! The mesh numbering is the in-process one (`ThreadGroup` meshes in the trainer): world rank
//! `r` is rank `r % tp` of TP group `r / tp` (ranks `d*tp .. d*tp+tp`) and rank `r / tp` of DP
//! group `r % tp` (ranks `t, t+tp, ...`). Each sub-group is a group of its own — a
//! [`TcpComm`] whose leader (its first member) listens on a fresh port published through the
//! world store under the group's name, or an NCCL communicator whose leader publishes a unique
//! id of its own — so sums are taken in group-rank order exactly as the threaded mesh takes
//! them, and a launched run reproduces a threaded one bit for bit.
//!
//! Errors of a sub-group name world ranks (the numbers the launcher prints), not group ranks.

use super::store::Rendezvous;
use super::tcp::TcpComm;
use super::{CommError, Communicator};
use crate::Tensor;

/// Which collectives a launched process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// CPU collectives over TCP.
    Tcp,
    /// NCCL on `cuda:<LOCAL_RANK>` (feature `cuda`).
    Nccl,
}

/// A communicator over some ranks of the job; collectives behave as the inner group's, and
/// errors are renumbered to world ranks.
pub struct SubGroup {
    inner: Box<dyn Communicator>,
    /// World rank of each group rank.
    members: Vec<usize>,
}

impl SubGroup {
    /// Joins the group `name` made of the world ranks `members` (listed in group-rank order;
    /// this process's world rank must be one of them). Every member must call this with the
    /// same `name` and `members`.
    pub fn connect(
        rv: &mut Rendezvous,
        name: &str,
        members: Vec<usize>,
        backend: Backend,
    ) -> Result<Self, CommError> {
        let me = rv.env.rank;
        let rank = members.iter().position(|&m| m == me).ok_or_else(|| {
            CommError::Group(format!("rank {me} is not in group {name} {members:?}"))
        })?;
        let world = members.len();
        let inner: Box<dyn Communicator> = match backend {
            Backend::Tcp => {
                // Only the leader's address is used; it is this process's side of its store
                // connection, which every other rank can route to.
                let host = match rank {
                    0 => rv.store.local_host()?,
                    _ => String::new(),
                };
                Box::new(TcpComm::connect_as(
                    &mut rv.store,
                    rank,
                    world,
                    name,
                    &host,
                )?)
            }
            Backend::Nccl => nccl(rv, rank, world, name)?,
        };
        Ok(SubGroup { inner, members })
    }

    /// The world ranks of the group, in group-rank order.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    fn world_rank(&self, r: usize) -> usize {
        self.members.get(r).copied().unwrap_or(r)
    }

    fn renumber(&self, e: CommError) -> CommError {
        let w = |r: usize| self.world_rank(r);
        let all = |v: Vec<usize>| v.into_iter().map(w).collect();
        match e {
            CommError::PeerGone { op, rank, missing } => CommError::PeerGone {
                op,
                rank: w(rank),
                missing: all(missing),
            },
            CommError::Timeout {
                op,
                rank,
                timeout,
                missing,
            } => CommError::Timeout {
                op,
                rank: w(rank),
                timeout,
                missing: all(missing),
            },
            CommError::Mismatch { op, rank, msg } => CommError::Mismatch {
                op,
                rank: w(rank),
                msg: format!("{msg} (group of world ranks {:?})", self.members),
            },
            CommError::DType { op, rank, dtype } => CommError::DType {
                op,
                rank: w(rank),
                dtype,
            },
            CommError::Backend { op, rank, msg } => CommError::Backend {
                op,
                rank: w(rank),
                msg,
            },
            CommError::Rendezvous { rank, msg } => CommError::Rendezvous { rank: w(rank), msg },
            other => other,
        }
    }
}

#[cfg(feature = "cuda")]
fn nccl(
    rv: &mut Rendezvous,
    rank: usize,
    world: usize,
    name: &str,
) -> Result<Box<dyn Communicator>, CommError> {
    let ordinal = rv.env.local_rank;
    Ok(Box::new(super::nccl::NcclComm::connect_as(
        &mut rv.store,
        rank,
        world,
        ordinal,
        name,
    )?))
}

#[cfg(not(feature = "cuda"))]
fn nccl(
    rv: &mut Rendezvous,
    _: usize,
    _: usize,
    _: &str,
) -> Result<Box<dyn Communicator>, CommError> {
    Err(CommError::Backend {
        op: "nccl init",
        rank: rv.env.rank,
        msg: "NCCL needs a build with `--features cuda`".into(),
    })
}

impl Communicator for SubGroup {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn world_size(&self) -> usize {
        self.inner.world_size()
    }

    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CommError> {
        self.inner.all_reduce_sum(t).map_err(|e| self.renumber(e))
    }

    fn all_gather(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        let r = self.inner.all_gather(input, output);
        r.map_err(|e| self.renumber(e))
    }

    fn reduce_scatter_sum(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        let r = self.inner.reduce_scatter_sum(input, output);
        r.map_err(|e| self.renumber(e))
    }

    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        self.inner.broadcast(t, root).map_err(|e| self.renumber(e))
    }

    fn barrier(&mut self) -> Result<(), CommError> {
        self.inner.barrier().map_err(|e| self.renumber(e))
    }
}

/// This rank's two groups of a `tp × dp` mesh over the whole job.
pub struct MeshGroups {
    pub tp: SubGroup,
    pub dp: SubGroup,
}

impl MeshGroups {
    /// Builds the TP group, then the DP group, of this process (`WORLD_SIZE` must be
    /// `tp * dp`). Every process builds its TP group first, and TP groups are disjoint, so
    /// no leader waits on a rank busy with another group.
    pub fn connect(rv: &mut Rendezvous, tp: usize, backend: Backend) -> Result<Self, CommError> {
        let (world, r) = (rv.env.world_size, rv.env.rank);
        if tp == 0 || !world.is_multiple_of(tp) {
            return Err(CommError::Group(format!(
                "tensor-parallel degree {tp} does not divide WORLD_SIZE={world}"
            )));
        }
        let (t, d) = (r % tp, r / tp);
        let tp_members = (d * tp..(d + 1) * tp).collect();
        let dp_members = (t..world).step_by(tp).collect();
        let tp_group = SubGroup::connect(
            rv,
            &format!("mesh{tp}x{}/tp{d}", world / tp),
            tp_members,
            backend,
        )?;
        let dp_group = SubGroup::connect(
            rv,
            &format!("mesh{tp}x{}/dp{t}", world / tp),
            dp_members,
            backend,
        )?;
        Ok(MeshGroups {
            tp: tp_group,
            dp: dp_group,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::{DistEnv, ThreadGroup};
    use std::time::Duration;

    fn env(rank: usize, world: usize, port: u16, timeout: Duration) -> DistEnv {
        DistEnv {
            rank,
            world_size: world,
            local_rank: rank,
            local_world_size: world,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            timeout,
        }
    }

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    fn input(r: usize) -> Vec<f32> {
        let mut rng = crate::Rng::new(70 + r as u64);
        (0..257).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
    }

    /// Sum over the TP group, then gather over the DP group, of this rank's input.
    fn run(tp: &mut dyn Communicator, dp: &mut dyn Communicator, r: usize) -> Vec<u32> {
        let mut t = Tensor::from_vec(input(r), &[257]).unwrap();
        tp.all_reduce_sum(&mut t).unwrap();
        let n = dp.world_size();
        let mut g = Tensor::zeros(&[n * 257], crate::DType::F32, &crate::Device::Cpu).unwrap();
        dp.all_gather(&t, &mut g).unwrap();
        g.to_f32_vec()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect()
    }

    #[test]
    fn a_2x3_mesh_over_tcp_matches_the_thread_mesh_bit_for_bit() {
        let (tp, dp) = (2, 3);
        let port = free_port();
        let tcp: Vec<(Vec<usize>, Vec<usize>, Vec<u32>)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..tp * dp)
                .map(|r| {
                    s.spawn(move || {
                        let e = env(r, tp * dp, port, Duration::from_secs(20));
                        let mut rv = Rendezvous::join(e).unwrap();
                        let mut g = MeshGroups::connect(&mut rv, tp, Backend::Tcp).unwrap();
                        assert_eq!((g.tp.rank(), g.dp.rank()), (r % tp, r / tp));
                        let out = run(&mut g.tp, &mut g.dp, r);
                        (g.tp.members().to_vec(), g.dp.members().to_vec(), out)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(tcp[3].0, [2, 3]);
        assert_eq!(tcp[3].1, [1, 3, 5]);
        let mut tp_groups: Vec<Vec<_>> = (0..dp).map(|_| ThreadGroup::new(tp).unwrap()).collect();
        let mut dp_groups: Vec<Vec<_>> = (0..tp).map(|_| ThreadGroup::new(dp).unwrap()).collect();
        let threads: Vec<Vec<u32>> = std::thread::scope(|s| {
            let mut hs = Vec::new();
            for r in (0..tp * dp).rev() {
                let mut a = tp_groups[r / tp].pop().unwrap();
                let mut b = dp_groups[r % tp].pop().unwrap();
                hs.push(s.spawn(move || run(&mut a, &mut b, r)));
            }
            let mut v: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            v.reverse();
            v
        });
        for r in 0..tp * dp {
            assert_eq!(tcp[r].2, threads[r], "rank {r}: tcp mesh vs thread mesh");
        }
        // Chunk d of every rank's gather is TP group d's sum, taken in rank order.
        let want: Vec<u32> = (0..dp)
            .flat_map(|d| {
                let (a, b) = (input(d * tp), input(d * tp + 1));
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (x + y).to_bits())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(tcp.iter().all(|x| x.2 == want), "gathered TP sums");
    }

    #[test]
    fn a_dead_rank_in_a_tp_group_is_named_by_its_world_rank() {
        let (tp, world) = (2, 4);
        let port = free_port();
        let errs: Vec<Option<String>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..world)
                .map(|r| {
                    s.spawn(move || {
                        let e = env(r, world, port, Duration::from_secs(10));
                        let mut rv = Rendezvous::join(e).unwrap();
                        let mut g = MeshGroups::connect(&mut rv, tp, Backend::Tcp).unwrap();
                        if r == 3 {
                            // Its sockets close, as a killed process's do.
                            return None;
                        }
                        let mut t = Tensor::from_vec(input(r), &[257]).unwrap();
                        let res = g.tp.all_reduce_sum(&mut t);
                        // Rank 3's group leader fails; the other TP group succeeds.
                        Some(res.err().map(|e| e.to_string()).unwrap_or_default())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let e2 = errs[2].as_deref().unwrap();
        assert!(
            e2.contains("on rank 2") && e2.contains("[3]") && e2.contains("left the group"),
            "{e2}"
        );
        assert_eq!(errs[0].as_deref(), Some(""));
        assert_eq!(errs[1].as_deref(), Some(""));
    }

    #[test]
    fn a_tp_degree_that_does_not_divide_the_world_is_refused() {
        let port = free_port();
        let mut rv = Rendezvous::join(env(0, 1, port, Duration::from_secs(5))).unwrap();
        let e = MeshGroups::connect(&mut rv, 2, Backend::Tcp).err().unwrap();
        assert!(
            e.to_string().contains("does not divide WORLD_SIZE=1"),
            "{e}"
        );
    }
}
