//! The TCP communicator: every collective gives the same bits as the in-process group (rank
//! threads over localhost), and a killed process makes the others fail, naming it, within the
//! timeout (ranks are this test binary re-executed with the torchrun environment).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::comm::{
    Communicator, DistEnv, Rendezvous, StoreClient, StoreServer, TcpComm, ThreadGroup,
};
use runtime::{DType, Device, Tensor};

fn inputs(rank: usize) -> Vec<f32> {
    let mut rng = runtime::Rng::new(11 + rank as u64);
    (0..3000).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
}

/// Runs every collective once; returns the outputs in a fixed order.
fn collectives(c: &mut dyn Communicator) -> Vec<Vec<f32>> {
    let (r, n) = (c.rank(), c.world_size());
    let x = inputs(r);
    let mut out = Vec::new();
    let mut t = Tensor::from_vec(x.clone(), &[3000]).unwrap();
    c.all_reduce_sum(&mut t).unwrap();
    out.push(t.to_f32_vec().unwrap());
    let bf = Tensor::from_vec(x.clone(), &[3000])
        .unwrap()
        .cast(DType::BF16)
        .unwrap();
    let mut g = Tensor::zeros(&[n * 3000], DType::BF16, &Device::Cpu).unwrap();
    c.all_gather(&bf, &mut g).unwrap();
    out.push(g.to_f32_vec().unwrap());
    let inp = Tensor::from_vec(x[..n * 1000].to_vec(), &[n * 1000]).unwrap();
    let mut rs = Tensor::zeros(&[1000], DType::F32, &Device::Cpu).unwrap();
    c.reduce_scatter_sum(&inp, &mut rs).unwrap();
    out.push(rs.to_f32_vec().unwrap());
    let mut b = Tensor::from_vec(x[..10].to_vec(), &[10]).unwrap();
    c.broadcast(&mut b, n - 1).unwrap();
    out.push(b.to_f32_vec().unwrap());
    c.barrier().unwrap();
    out
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|x| x.iter().map(|f| f.to_bits()).collect())
        .collect()
}

#[test]
fn tcp_group_matches_the_thread_group_bit_for_bit() {
    let n = 3;
    let server = StoreServer::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().to_string();
    let tcp: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|r| {
                let addr = addr.clone();
                s.spawn(move || {
                    let mut st = StoreClient::connect(&addr, r, Duration::from_secs(20)).unwrap();
                    let mut c = TcpComm::connect(&mut st, n, "test").unwrap();
                    collectives(&mut c)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let threads: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let hs: Vec<_> = ThreadGroup::new(n)
            .unwrap()
            .into_iter()
            .map(|mut c| s.spawn(move || collectives(&mut c)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in 0..n {
        assert_eq!(bits(&tcp[r]), bits(&threads[r]), "rank {r}");
    }
    // The reduce-scatter chunk of rank 1 is the serial sum of the inputs' second thousand.
    let want: Vec<f32> = (1000..2000)
        .map(|i| inputs(0)[i] + inputs(1)[i] + inputs(2)[i])
        .collect();
    assert_eq!(tcp[1][2], want);
}

#[test]
fn tcp_mismatched_collectives_are_an_error_on_every_rank() {
    let server = StoreServer::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().to_string();
    let errs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|r| {
                let addr = addr.clone();
                s.spawn(move || {
                    let mut st = StoreClient::connect(&addr, r, Duration::from_secs(20)).unwrap();
                    let mut c = TcpComm::connect(&mut st, 2, "m").unwrap();
                    let mut t = Tensor::zeros(&[4 + r], DType::F32, &Device::Cpu).unwrap();
                    c.all_reduce_sum(&mut t).unwrap_err().to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for e in &errs {
        assert!(e.contains("ranks disagree"), "{e}");
    }
}

/// Entry point of the re-executed rank processes (a no-op in a normal test run).
#[test]
fn tcp_child_rank() {
    if std::env::var_os("SWERL_TCP_TEST_CHILD").is_none() {
        return;
    }
    let env = DistEnv::from_env()
        .unwrap()
        .expect("torchrun env set by the parent");
    let run = || -> Result<(), runtime::comm::CommError> {
        let mut rv = Rendezvous::join(env.clone())?;
        let mut c = TcpComm::from_rendezvous(&mut rv, "dp")?;
        for step in 0.. {
            let mut t = Tensor::from_vec(vec![1f32; 256], &[256]).unwrap();
            c.all_reduce_sum(&mut t)?;
            assert_eq!(t.to_f32_vec().unwrap()[0], env.world_size as f32);
            eprintln!("CHILD rank {} step {step}", env.rank);
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("CHILD rank {} error: {e}", env.rank);
        std::process::exit(3);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_killed_rank_is_named_by_the_others_within_the_timeout() {
    let n = 3;
    let port = free_port().to_string();
    let exe = std::env::current_exe().unwrap();
    let mut kids: Vec<_> = (0..n)
        .map(|r| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "tcp_child_rank",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SWERL_TCP_TEST_CHILD", "1")
                .env("RANK", r.to_string())
                .env("WORLD_SIZE", n.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env("SWERL_COMM_TIMEOUT", "20")
                .stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Wait until rank 2 has done a few all-reduces, then kill it.
    let mut lines = BufReader::new(kids[2].stderr.take().unwrap()).lines();
    let victim_started = lines.any(|l| l.unwrap().contains("CHILD rank 2 step 3"));
    assert!(victim_started, "rank 2 never reached step 3");
    kids[2].kill().unwrap();
    let killed_at = Instant::now();
    kids[2].wait().unwrap();
    for (r, kid) in kids.into_iter().enumerate().take(2) {
        let out = kid.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "rank {r}: {err}");
        let line = err
            .lines()
            .find(|l| l.contains("error:"))
            .unwrap_or_else(|| panic!("rank {r} printed no error: {err}"));
        assert!(
            line.contains("rank(s) [2] left the group"),
            "rank {r}: {line}"
        );
    }
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(20), "failing took {took:?}");
}
