//! A small TCP key-value store for the rendezvous (std::net only, like torch's TCPStore): rank
//! 0 serves it, every rank (rank 0 included) connects as a client, retrying until the timeout.
//!
//! The server remembers which rank each connection belongs to. A connection that closes
//! without a goodbye marks that rank dead, so a peer waiting for a key fails at once with an
//! error naming the dead rank instead of waiting out the timeout; a key that never appears
//! fails at the timeout with an error naming the key (or, for [`StoreClient::wait_ranks`], the
//! ranks that did not report).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::env::DistEnv;
use super::wire::*;
use super::CommError;

/// Largest key or value the server accepts (rendezvous data is small: ids and addresses).
const MAX_ITEM: u64 = 16 << 20;

const OP_HELLO: u8 = 0;
const OP_SET: u8 = 1;
const OP_GET: u8 = 2;
const OP_BYE: u8 = 3;

#[derive(Default)]
struct ServerState {
    kv: HashMap<String, Vec<u8>>,
    /// Ranks whose connection closed without a goodbye.
    dead: BTreeSet<usize>,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<ServerState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The store's server (rank 0). Dropping it stops accepting and closes idle connections.
pub struct StoreServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl StoreServer {
    /// Listens on `addr` (`host:port`; port 0 picks a free one, see [`StoreServer::local_addr`]).
    pub fn bind(addr: &str) -> Result<Self, CommError> {
        let listener = TcpListener::bind(addr).map_err(|e| CommError::Rendezvous {
            rank: 0,
            msg: format!("cannot serve the store on {addr}: {e} (is MASTER_PORT in use?)"),
        })?;
        let local = listener.local_addr().map_err(|e| CommError::Rendezvous {
            rank: 0,
            msg: format!("store listener on {addr}: {e}"),
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| CommError::Rendezvous {
                rank: 0,
                msg: format!("store listener on {addr}: {e}"),
            })?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(ServerState::default()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("swerl-store".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(|e| CommError::Rendezvous {
                rank: 0,
                msg: format!("cannot start the store thread: {e}"),
            })?;
        Ok(StoreServer {
            addr: local,
            shared,
            accept: Some(accept),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// How often idle server threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                // A connection thread that cannot start just drops the client, which then
                // reports the store as unreachable.
                let _ = std::thread::Builder::new()
                    .name("swerl-store-conn".into())
                    .spawn(move || serve(stream, s));
            }
            Err(e) if is_timeout(&e) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Serves one client until it says goodbye (clean) or the connection drops (rank dead).
fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    if stream.set_nonblocking(false).is_err() || stream.set_nodelay(true).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(POLL));
    let mut rank: Option<usize> = None;
    loop {
        let op = match get_u8(&mut stream) {
            Ok(op) => op,
            Err(e) if is_timeout(&e) => {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            Err(_) => {
                if let Some(r) = rank {
                    shared.lock().dead.insert(r);
                }
                return;
            }
        };
        // The rest of a request follows immediately; give it the full socket timeout.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let ok = match op {
            OP_HELLO => get_u32(&mut stream).map(|r| {
                rank = Some(r as usize);
                shared.lock().dead.remove(&(r as usize));
            }),
            OP_SET => (|| {
                let k = get_bytes(&mut stream, MAX_ITEM)?;
                let v = get_bytes(&mut stream, MAX_ITEM)?;
                shared
                    .lock()
                    .kv
                    .insert(String::from_utf8_lossy(&k).into_owned(), v);
                write_all(&mut stream, &[0])
            })(),
            OP_GET => (|| {
                let k = get_bytes(&mut stream, MAX_ITEM)?;
                let key = String::from_utf8_lossy(&k);
                let mut out = Vec::new();
                {
                    let st = shared.lock();
                    match st.kv.get(key.as_ref()) {
                        Some(v) => {
                            put_u8(&mut out, 1);
                            put_bytes(&mut out, v);
                        }
                        None => {
                            put_u8(&mut out, 0);
                            put_u32(&mut out, st.dead.len() as u32);
                            st.dead.iter().for_each(|&r| put_u32(&mut out, r as u32));
                        }
                    }
                }
                write_all(&mut stream, &out)
            })(),
            OP_BYE => return,
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "unknown op")),
        };
        if ok.is_err() {
            if let Some(r) = rank {
                shared.lock().dead.insert(r);
            }
            return;
        }
        let _ = stream.set_read_timeout(Some(POLL));
    }
}

/// One rank's connection to the store.
pub struct StoreClient {
    stream: TcpStream,
    rank: usize,
    addr: String,
    timeout: Duration,
}

impl StoreClient {
    /// Connects to the store at `addr` as `rank`, retrying (rank 0 may not be listening yet)
    /// until `timeout`.
    pub fn connect(addr: &str, rank: usize, timeout: Duration) -> Result<Self, CommError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            let attempt = addr.to_socket_addrs().and_then(|mut it| {
                it.next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
                    .and_then(|a| {
                        let left = deadline.saturating_duration_since(Instant::now());
                        TcpStream::connect_timeout(&a, left.max(Duration::from_millis(10)))
                    })
            });
            match attempt {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(CommError::Rendezvous {
                        rank,
                        msg: format!(
                            "could not reach the store of rank 0 at {addr} within {timeout:?}: {e} \
                             (is rank 0 running, and MASTER_ADDR/MASTER_PORT right?)"
                        ),
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let io_err = |e: io::Error| CommError::Rendezvous {
            rank,
            msg: format!("store at {addr}: {e}"),
        };
        stream.set_nodelay(true).map_err(io_err)?;
        stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
        stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let mut c = StoreClient {
            stream,
            rank,
            addr: addr.to_string(),
            timeout,
        };
        let mut msg = vec![OP_HELLO];
        put_u32(&mut msg, rank as u32);
        write_all(&mut c.stream, &msg).map_err(|e| c.lost(e))?;
        Ok(c)
    }

    /// Connects as `env.rank` to `MASTER_ADDR:MASTER_PORT` with `env.timeout`.
    pub fn from_env(env: &DistEnv) -> Result<Self, CommError> {
        Self::connect(&env.master(), env.rank, env.timeout)
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The `host:port` this client reached (rank 0's address as the other ranks see it).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// This process's address on the route to the store: where the other ranks (which reach
    /// the store too) can reach a listener of this process.
    pub fn local_host(&self) -> Result<String, CommError> {
        let a = self
            .stream
            .local_addr()
            .map_err(|e| CommError::Rendezvous {
                rank: self.rank,
                msg: format!("local address of the store connection: {e}"),
            })?;
        Ok(match a.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        })
    }

    fn lost(&self, e: io::Error) -> CommError {
        CommError::Rendezvous {
            rank: self.rank,
            msg: format!(
                "lost the connection to the store of rank 0 at {}: {e} (did rank 0 exit?)",
                self.addr
            ),
        }
    }

    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<(), CommError> {
        let mut msg = vec![OP_SET];
        put_bytes(&mut msg, key.as_bytes());
        put_bytes(&mut msg, value);
        write_all(&mut self.stream, &msg).map_err(|e| self.lost(e))?;
        get_u8(&mut self.stream).map_err(|e| self.lost(e))?;
        Ok(())
    }

    /// The value of `key` if set, and the ranks the server has seen die.
    fn try_get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Vec<usize>), CommError> {
        let mut msg = vec![OP_GET];
        put_bytes(&mut msg, key.as_bytes());
        write_all(&mut self.stream, &msg).map_err(|e| self.lost(e))?;
        let found = get_u8(&mut self.stream).map_err(|e| self.lost(e))?;
        if found == 1 {
            let v = get_bytes(&mut self.stream, MAX_ITEM).map_err(|e| self.lost(e))?;
            return Ok((Some(v), Vec::new()));
        }
        let n = get_u32(&mut self.stream).map_err(|e| self.lost(e))?;
        let dead = (0..n)
            .map(|_| get_u32(&mut self.stream).map(|r| r as usize))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| self.lost(e))?;
        Ok((None, dead))
    }

    /// Waits for `key` until the timeout; fails early, naming the rank, if a peer died.
    pub fn get(&mut self, key: &str) -> Result<Vec<u8>, CommError> {
        let deadline = Instant::now() + self.timeout;
        let mut nap = Duration::from_millis(1);
        loop {
            let (v, dead) = self.try_get(key)?;
            if let Some(v) = v {
                return Ok(v);
            }
            if !dead.is_empty() {
                return Err(CommError::PeerGone {
                    op: "store get",
                    rank: self.rank,
                    missing: dead,
                });
            }
            if Instant::now() >= deadline {
                return Err(CommError::Rendezvous {
                    rank: self.rank,
                    msg: format!("timed out after {:?} waiting for key `{key}`", self.timeout),
                });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }

    /// Waits for `{prefix}{r}` for every `r` in `0..world`; a timeout names the ranks whose
    /// key never appeared.
    pub fn wait_ranks(&mut self, prefix: &str, world: usize) -> Result<Vec<Vec<u8>>, CommError> {
        let deadline = Instant::now() + self.timeout;
        let mut got: Vec<Option<Vec<u8>>> = vec![None; world];
        let mut nap = Duration::from_millis(1);
        loop {
            let mut dead = Vec::new();
            for (r, slot) in got.iter_mut().enumerate() {
                if slot.is_none() {
                    let (v, d) = self.try_get(&format!("{prefix}{r}"))?;
                    *slot = v;
                    dead = d;
                }
            }
            let missing: Vec<usize> = (0..world).filter(|&r| got[r].is_none()).collect();
            if missing.is_empty() {
                return Ok(got.into_iter().flatten().collect());
            }
            let gone: Vec<usize> = dead.into_iter().filter(|r| missing.contains(r)).collect();
            if !gone.is_empty() {
                return Err(CommError::PeerGone {
                    op: "rendezvous",
                    rank: self.rank,
                    missing: gone,
                });
            }
            if Instant::now() >= deadline {
                return Err(CommError::Timeout {
                    op: "rendezvous",
                    rank: self.rank,
                    timeout: self.timeout,
                    missing,
                });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for StoreClient {
    fn drop(&mut self) {
        // Best effort: without it the server counts this rank as dead.
        let _ = write_all(&mut self.stream, &[OP_BYE]);
    }
}

/// A joined job: every rank reached the store. Rank 0 holds the server, which lives as long
/// as this value.
pub struct Rendezvous {
    pub env: DistEnv,
    pub store: StoreClient,
    _server: Option<StoreServer>,
}

impl Rendezvous {
    /// Rank 0 serves the store on `MASTER_PORT` (all interfaces); every rank connects, checks
    /// in, and waits until all `WORLD_SIZE` ranks have (a missing rank is named on timeout).
    pub fn join(env: DistEnv) -> Result<Self, CommError> {
        let server = if env.rank == 0 {
            let any = if env.master_addr.contains(':') {
                "[::]"
            } else {
                "0.0.0.0"
            };
            Some(StoreServer::bind(&format!("{any}:{}", env.master_port))?)
        } else {
            None
        };
        let mut store = StoreClient::from_env(&env)?;
        store.set(&format!("joined/{}", env.rank), &[1])?;
        store.wait_ranks("joined/", env.world_size)?;
        Ok(Rendezvous {
            env,
            store,
            _server: server,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_across_threads_and_dead_peer_is_named() {
        let server = StoreServer::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().to_string();
        let t = Duration::from_secs(5);
        let a2 = addr.clone();
        let h = std::thread::spawn(move || {
            let mut c = StoreClient::connect(&a2, 1, t).unwrap();
            c.set("x", b"hello").unwrap();
            c.get("y").unwrap()
        });
        let mut c0 = StoreClient::connect(&addr, 0, t).unwrap();
        assert_eq!(c0.get("x").unwrap(), b"hello");
        c0.set("y", b"back").unwrap();
        assert_eq!(h.join().unwrap(), b"back");
        // Rank 2 connects, then its connection drops without a goodbye.
        let s = TcpStream::connect(&addr).unwrap();
        let mut hello = vec![OP_HELLO];
        put_u32(&mut hello, 2);
        write_all(&mut &s, &hello).unwrap();
        drop(s);
        std::thread::sleep(Duration::from_millis(200));
        let e = c0.get("never").unwrap_err().to_string();
        assert!(e.contains("[2]") && e.contains("left the group"), "{e}");
    }

    #[test]
    fn timeouts_name_the_key_and_missing_ranks() {
        let server = StoreServer::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().to_string();
        let mut c = StoreClient::connect(&addr, 0, Duration::from_millis(200)).unwrap();
        let e = c.get("k").unwrap_err().to_string();
        assert!(e.contains("waiting for key `k`"), "{e}");
        c.set("r/0", b"").unwrap();
        c.set("r/2", b"").unwrap();
        let e = c.wait_ranks("r/", 4).unwrap_err().to_string();
        assert!(e.contains("[1, 3]") && e.contains("timed out"), "{e}");
    }

    #[test]
    fn unreachable_store_is_a_clear_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = StoreClient::connect(&format!("127.0.0.1:{port}"), 3, Duration::from_millis(200))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("rank 3") && e.contains("could not reach"), "{e}");
    }
}
