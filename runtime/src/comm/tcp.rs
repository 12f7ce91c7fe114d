//! Cross-process CPU collectives over TCP (the role gloo plays for torch): a star through
//! rank 0. Every other rank sends its contribution to rank 0, which checks that all ranks
//! called the same collective, combines the contributions in rank order on one thread, and
//! sends each rank its result.
//!
//! Why a star and not a ring: the sum is taken in rank order by one thread exactly as
//! [`super::ThreadGroup`] does, so results are bit-identical across ranks, runs, and the two
//! implementations (an in-process DP run and a multi-process one produce the same weights).
//! Rank 0's link carries `2 (n - 1)` payloads per all-reduce, which is fine for the CPU
//! fallback and tests; GPUs use NCCL.
//!
//! Failure handling: a peer that exits closes its socket, so rank 0 sees end-of-file while
//! reading it and sends every other rank an abort naming it; if rank 0 itself dies, the
//! others see end-of-file and name rank 0. Reads wait at most the timeout (non-root ranks
//! twice that, so rank 0 can report which peer it was waiting for).

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::call::Call;
use super::store::{Rendezvous, StoreClient};
use super::wire::*;
use super::{CommError, Communicator};
use crate::Tensor;

const ST_OK: u8 = 0;
const ST_GONE: u8 = 1;
const ST_TIMEOUT: u8 = 2;
const ST_MISMATCH: u8 = 3;

impl Call {
    /// Values rank `r` sends for this collective.
    fn payload_len(self, r: usize) -> usize {
        match self {
            Call::AllReduce { numel }
            | Call::AllGather { numel }
            | Call::ReduceScatter { numel } => numel,
            Call::Broadcast { numel, root } if r == root => numel,
            Call::Broadcast { .. } | Call::Barrier => 0,
        }
    }

    /// Values each rank receives.
    fn output_len(self, world: usize) -> usize {
        match self {
            Call::AllReduce { numel } | Call::Broadcast { numel, .. } => numel,
            Call::AllGather { numel } => numel * world,
            Call::ReduceScatter { numel } => numel / world,
            Call::Barrier => 0,
        }
    }

    fn encode(self, out: &mut Vec<u8>) {
        let (code, numel, root) = match self {
            Call::AllReduce { numel } => (1, numel, 0),
            Call::AllGather { numel } => (2, numel, 0),
            Call::ReduceScatter { numel } => (3, numel, 0),
            Call::Broadcast { numel, root } => (4, numel, root),
            Call::Barrier => (5, 0, 0),
        };
        put_u8(out, code);
        put_u64(out, numel as u64);
        put_u32(out, root as u32);
    }

    fn decode(r: &mut impl io::Read) -> io::Result<Call> {
        let code = get_u8(r)?;
        let numel = get_u64(r)? as usize;
        let root = get_u32(r)? as usize;
        Ok(match code {
            1 => Call::AllReduce { numel },
            2 => Call::AllGather { numel },
            3 => Call::ReduceScatter { numel },
            4 => Call::Broadcast { numel, root },
            5 => Call::Barrier,
            c => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown collective code {c}"),
                ))
            }
        })
    }
}

/// What rank 0 answers a collective with.
enum Reply {
    Ok(Vec<f32>),
    Gone(Vec<usize>),
    Timeout(Vec<usize>),
    Mismatch(String),
}

fn read_reply(s: &mut TcpStream) -> io::Result<Reply> {
    let st = get_u8(s)?;
    Ok(match st {
        ST_OK => {
            let n = get_u64(s)? as usize;
            Reply::Ok(read_f32s(s, n)?)
        }
        ST_GONE | ST_TIMEOUT => {
            let n = get_u32(s)?;
            let ranks = (0..n)
                .map(|_| get_u32(s).map(|r| r as usize))
                .collect::<io::Result<Vec<_>>>()?;
            if st == ST_GONE {
                Reply::Gone(ranks)
            } else {
                Reply::Timeout(ranks)
            }
        }
        _ => Reply::Mismatch(String::from_utf8_lossy(&get_bytes(s, 1 << 20)?).into_owned()),
    })
}

/// One rank of a TCP group.
pub struct TcpComm {
    rank: usize,
    world: usize,
    timeout: Duration,
    /// Rank 0: the links to ranks `1..world` (index `r - 1`); other ranks: the link to rank 0.
    links: Vec<TcpStream>,
}

impl TcpComm {
    /// Builds the group `name` over a joined store: rank 0 listens on an ephemeral port
    /// (advertised under the store's host), the others connect to it.
    pub fn connect(store: &mut StoreClient, world: usize, name: &str) -> Result<Self, CommError> {
        let host = store
            .addr()
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        Self::connect_as(store, store.rank(), world, name, &host)
    }

    /// Builds the group `name` in which this process is `rank` of `world` (a sub-group of the
    /// store's job); the group's rank 0 listens on an ephemeral port advertised as `host`.
    pub(crate) fn connect_as(
        store: &mut StoreClient,
        rank: usize,
        world: usize,
        name: &str,
        host: &str,
    ) -> Result<Self, CommError> {
        let timeout = store.timeout();
        if world == 0 || rank >= world {
            return Err(CommError::Group(format!(
                "rank {rank} is not in a group of {world}"
            )));
        }
        let key = format!("tcp/{name}/addr");
        let rv = |msg: String| CommError::Rendezvous { rank, msg };
        let links = if rank == 0 {
            let any = if host.contains(':') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let l = TcpListener::bind(any).map_err(|e| rv(format!("tcp group listener: {e}")))?;
            let port = l
                .local_addr()
                .map_err(|e| rv(format!("tcp group listener: {e}")))?
                .port();
            store.set(&key, format!("{host}:{port}").as_bytes())?;
            accept_peers(&l, world, timeout)?
        } else {
            let addr = String::from_utf8_lossy(&store.get(&key)?).into_owned();
            let s = connect_retry(&addr, rank, timeout)?;
            let mut hello = Vec::new();
            put_u32(&mut hello, rank as u32);
            put_u32(&mut hello, world as u32);
            write_all(&mut &s, &hello).map_err(|e| rv(format!("tcp group {addr}: {e}")))?;
            vec![s]
        };
        for s in &links {
            let t = if rank == 0 { timeout } else { timeout * 2 };
            s.set_nodelay(true)
                .and_then(|_| s.set_read_timeout(Some(t)))
                .and_then(|_| s.set_write_timeout(Some(t)))
                .map_err(|e| rv(format!("tcp group socket: {e}")))?;
        }
        Ok(TcpComm {
            rank,
            world,
            timeout,
            links,
        })
    }

    /// The group over a joined rendezvous (all `WORLD_SIZE` ranks).
    pub fn from_rendezvous(rv: &mut Rendezvous, name: &str) -> Result<Self, CommError> {
        let world = rv.env.world_size;
        Self::connect(&mut rv.store, world, name)
    }

    fn io_error(&self, op: &'static str, peer: usize, e: &io::Error) -> CommError {
        if is_timeout(e) {
            CommError::Timeout {
                op,
                rank: self.rank,
                timeout: self.timeout,
                missing: vec![peer],
            }
        } else {
            CommError::PeerGone {
                op,
                rank: self.rank,
                missing: vec![peer],
            }
        }
    }

    /// One collective: returns this rank's output values.
    fn exchange(&mut self, call: Call, data: &[f32]) -> Result<Vec<f32>, CommError> {
        if self.world == 1 {
            return Ok(combine(call, vec![data.to_vec()], 1).swap_remove(0));
        }
        if self.rank == 0 {
            self.exchange_root(call, data)
        } else {
            self.exchange_leaf(call, data)
        }
    }

    fn exchange_leaf(&mut self, call: Call, data: &[f32]) -> Result<Vec<f32>, CommError> {
        let op = call.name();
        let s = &mut self.links[0];
        let mut head = Vec::with_capacity(24);
        call.encode(&mut head);
        put_u64(&mut head, data.len() as u64);
        let sent = s
            .write_all(&head)
            .and_then(|_| s.write_all(&f32_bytes(data)));
        if let Err(e) = sent {
            return Err(self.io_error(op, 0, &e));
        }
        let reply = read_reply(&mut self.links[0]);
        let rank = self.rank;
        match reply {
            Ok(Reply::Ok(v)) if v.len() == call.output_len(self.world) => Ok(v),
            Ok(Reply::Ok(v)) => Err(CommError::Mismatch {
                op,
                rank,
                msg: format!(
                    "rank 0 answered {} values, expected {}",
                    v.len(),
                    call.output_len(self.world)
                ),
            }),
            Ok(Reply::Gone(missing)) => Err(CommError::PeerGone { op, rank, missing }),
            Ok(Reply::Timeout(missing)) => Err(CommError::Timeout {
                op,
                rank,
                timeout: self.timeout,
                missing,
            }),
            Ok(Reply::Mismatch(msg)) => Err(CommError::Mismatch { op, rank, msg }),
            Err(e) => Err(self.io_error(op, 0, &e)),
        }
    }

    fn exchange_root(&mut self, call: Call, data: &[f32]) -> Result<Vec<f32>, CommError> {
        let op = call.name();
        let mut deposits = Vec::with_capacity(self.world);
        deposits.push(data.to_vec());
        let mut mismatch = None;
        for r in 1..self.world {
            let got = (|| -> io::Result<Result<Vec<f32>, String>> {
                let s = &mut self.links[r - 1];
                let c = Call::decode(s)?;
                let n = get_u64(s)? as usize;
                // Checked before reading: a disagreeing peer's payload is never allocated.
                if c != call || n != call.payload_len(r) {
                    return Ok(Err(format!(
                        "ranks disagree: rank 0 called {call:?}, rank {r} called {c:?} with {n} values"
                    )));
                }
                Ok(Ok(read_f32s(s, n)?))
            })();
            match got {
                Ok(Ok(payload)) => deposits.push(payload),
                Ok(Err(msg)) => {
                    mismatch = Some(msg);
                    break;
                }
                Err(e) => {
                    let err = self.io_error(op, r, &e);
                    self.abort(&err, r);
                    return Err(err);
                }
            }
        }
        if let Some(msg) = mismatch {
            let err = CommError::Mismatch { op, rank: 0, msg };
            self.abort(&err, 0);
            return Err(err);
        }
        let mut outs = combine(call, deposits, self.world);
        let mine = std::mem::take(&mut outs[0]);
        let mut failed = None;
        for r in 1..self.world {
            let out = if outs.len() == 1 { &mine } else { &outs[r] };
            let mut head = vec![ST_OK];
            put_u64(&mut head, out.len() as u64);
            let s = &mut self.links[r - 1];
            let sent = s
                .write_all(&head)
                .and_then(|_| s.write_all(&f32_bytes(out)));
            if let Err(e) = sent {
                failed.get_or_insert(self.io_error(op, r, &e));
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(mine),
        }
    }

    /// Tells every rank but `culprit` (and 0) why the collective failed; best effort.
    fn abort(&mut self, err: &CommError, culprit: usize) {
        let mut msg = Vec::new();
        match err {
            CommError::PeerGone { missing, .. } | CommError::Timeout { missing, .. } => {
                let st = if matches!(err, CommError::PeerGone { .. }) {
                    ST_GONE
                } else {
                    ST_TIMEOUT
                };
                put_u8(&mut msg, st);
                put_u32(&mut msg, missing.len() as u32);
                missing.iter().for_each(|&r| put_u32(&mut msg, r as u32));
            }
            other => {
                put_u8(&mut msg, ST_MISMATCH);
                put_bytes(&mut msg, other.to_string().as_bytes());
            }
        }
        for r in 1..self.world {
            if r != culprit {
                let _ = write_all(&mut self.links[r - 1], &msg);
            }
        }
    }
}

/// Accepts `world - 1` peers, each introducing itself with its rank; ordered by rank.
fn accept_peers(
    l: &TcpListener,
    world: usize,
    timeout: Duration,
) -> Result<Vec<TcpStream>, CommError> {
    let rv = |msg: String| CommError::Rendezvous { rank: 0, msg };
    l.set_nonblocking(true)
        .map_err(|e| rv(format!("tcp group listener: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut peers: Vec<Option<TcpStream>> = (1..world).map(|_| None).collect();
    while peers.iter().any(Option::is_none) {
        match l.accept() {
            Ok((s, from)) => {
                s.set_nonblocking(false)
                    .and_then(|_| s.set_read_timeout(Some(timeout)))
                    .map_err(|e| rv(format!("tcp group peer {from}: {e}")))?;
                let mut r = &s;
                let (peer, w) = get_u32(&mut r)
                    .and_then(|p| get_u32(&mut r).map(|w| (p as usize, w as usize)))
                    .map_err(|e| rv(format!("tcp group peer {from}: no hello ({e})")))?;
                if w != world || peer == 0 || peer >= world || peers[peer - 1].is_some() {
                    return Err(rv(format!(
                        "tcp group peer {from} claims rank {peer} of {w}; expected a new rank in 1..{world} of {world}"
                    )));
                }
                peers[peer - 1] = Some(s);
            }
            Err(e) if is_timeout(&e) => {
                if Instant::now() >= deadline {
                    let missing = peers
                        .iter()
                        .enumerate()
                        .filter_map(|(i, p)| p.is_none().then_some(i + 1))
                        .collect();
                    return Err(CommError::Timeout {
                        op: "tcp group connect",
                        rank: 0,
                        timeout,
                        missing,
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(rv(format!("tcp group accept: {e}"))),
        }
    }
    Ok(peers.into_iter().flatten().collect())
}

fn connect_retry(addr: &str, rank: usize, timeout: Duration) -> Result<TcpStream, CommError> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = addr.to_socket_addrs().and_then(|mut it| {
            it.next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
                .and_then(|a| TcpStream::connect_timeout(&a, timeout))
        });
        match r {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(CommError::Rendezvous {
                    rank,
                    msg: format!("cannot connect to rank 0's tcp group at {addr}: {e}"),
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Each rank's output of a collective, from every rank's deposit (rank order). Returns one
/// shared vector when every rank gets the same output.
fn combine(call: Call, deposits: Vec<Vec<f32>>, world: usize) -> Vec<Vec<f32>> {
    let sum = |deposits: Vec<Vec<f32>>| {
        let mut it = deposits.into_iter();
        let mut acc = it.next().unwrap_or_default();
        for d in it {
            acc.iter_mut().zip(&d).for_each(|(a, x)| *a += x);
        }
        acc
    };
    match call {
        Call::AllReduce { .. } => vec![sum(deposits)],
        Call::AllGather { .. } => vec![deposits.concat()],
        Call::ReduceScatter { numel } => {
            let chunk = numel / world;
            let total = sum(deposits);
            (0..world)
                .map(|r| total[r * chunk..(r + 1) * chunk].to_vec())
                .collect()
        }
        Call::Broadcast { root, .. } => {
            let d = deposits.into_iter().nth(root).unwrap_or_default();
            vec![d]
        }
        Call::Barrier => vec![Vec::new()],
    }
}

impl Communicator for TcpComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "all_reduce_sum";
        let data = super::load(OP, self.rank, t)?;
        let r = self.exchange(Call::AllReduce { numel: data.len() }, &data)?;
        super::store(OP, self.rank, t, &r)
    }

    fn all_gather(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "all_gather";
        super::check_gather(OP, self.rank, self.world, input, output)?;
        let data = super::load(OP, self.rank, input)?;
        let r = self.exchange(Call::AllGather { numel: data.len() }, &data)?;
        super::store(OP, self.rank, output, &r)
    }

    fn reduce_scatter_sum(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "reduce_scatter_sum";
        super::check_gather(OP, self.rank, self.world, output, input)?;
        let data = super::load(OP, self.rank, input)?;
        let r = self.exchange(Call::ReduceScatter { numel: data.len() }, &data)?;
        super::store(OP, self.rank, output, &r)
    }

    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        const OP: &str = "broadcast";
        if root >= self.world {
            return Err(CommError::Mismatch {
                op: OP,
                rank: self.rank,
                msg: format!("root {root} is not a rank of {}", self.world),
            });
        }
        super::check_dtype(OP, self.rank, t)?;
        let numel = t.numel();
        let data = if self.rank == root {
            super::load(OP, self.rank, t)?
        } else {
            Vec::new()
        };
        let r = self.exchange(Call::Broadcast { numel, root }, &data)?;
        if self.rank != root {
            super::store(OP, self.rank, t, &r)?;
        }
        Ok(())
    }

    fn barrier(&mut self) -> Result<(), CommError> {
        self.exchange(Call::Barrier, &[]).map(|_| ())
    }
}
