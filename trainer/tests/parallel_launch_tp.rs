//! Tensor parallelism across processes through the real binary: `swerl launch --nproc 4 --
//! swerl train --tp 2` (a TP=2 × DP=2 mesh, one rank per process, TCP sub-groups) ends with
//! the metrics and the checkpoint of the threaded `swerl train --tp 2 --dp 2`, and a killed
//! rank makes the others fail naming it.

mod cli_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{free_port, metrics, mined_dataset, stderr, swerl, write_config};

#[test]
fn parallel_launch_tp2_dp2_processes_equal_the_thread_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let data = mined_dataset(dir.path());
    let cfg = write_config(dir.path(), &data);
    let (threads, procs) = (dir.path().join("threads"), dir.path().join("procs"));
    let out = swerl()
        .args(["train", "--quiet", "--tp", "2", "--dp", "2", "--config"])
        .arg(&cfg)
        .arg("--output_dir")
        .arg(&threads)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = swerl()
        .args(["launch", "--nproc", "4", "--master-port", &free_port()])
        .args(["--", "swerl", "train", "--quiet", "--tp", "2", "--config"])
        .arg(&cfg)
        .arg("--output_dir")
        .arg(&procs)
        .env("SWERL_COMM_TIMEOUT", "60")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (a, b) = (metrics(&threads), metrics(&procs));
    assert_eq!((a.len(), b.len()), (2, 2));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["dp_world"], 2);
        assert!(x["comm_bytes"].as_u64().unwrap() > 0);
        for k in [
            "loss",
            "kl",
            "reward_mean",
            "grad_norm",
            "comm_bytes",
            "comm_collectives",
            "dp_world",
        ] {
            assert_eq!(x[k], y[k], "{k}: threads vs processes");
        }
    }
    // Both meshes sum in group-rank order in f32, so the bits agree, not just the values.
    let ckpt = |d: &Path, f: &str| std::fs::read(d.join("checkpoint-000002").join(f)).unwrap();
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            ckpt(&threads, f) == ckpt(&procs, f),
            "{f}: the threaded and multi-process TP checkpoints differ"
        );
    }
}

#[test]
fn parallel_launch_tp_refuses_a_dp_that_does_not_match_the_world() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &dir.path().join("data"));
    let out = swerl()
        .args([
            "launch",
            "--nproc",
            "2",
            "--master-port",
            &free_port(),
            "--",
        ])
        .args(["swerl", "train", "--tp", "2", "--dp", "2", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("--dp is WORLD_SIZE / --tp"), "{e}");
}

/// One rank of a 4-process job started by hand (the launcher would stop the others itself).
fn rank(r: usize, port: &str, cfg: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_swerl"))
        .args(["train", "--quiet", "--tp", "2", "--config"])
        .arg(cfg)
        .arg("--output_dir")
        .arg(out)
        .args(["--steps", "100000"])
        .env("RANK", r.to_string())
        .env("WORLD_SIZE", "4")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port)
        .env("SWERL_COMM_TIMEOUT", "30")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn parallel_launch_tp_killed_rank_is_named_by_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = mined_dataset(dir.path());
    let cfg = write_config(dir.path(), &data);
    let out = dir.path().join("out");
    let port = free_port();
    let mut ranks: Vec<Child> = (0..4).map(|r| rank(r, &port, &cfg, &out)).collect();
    // Kill rank 3 once the job is training (rank 0 wrote a step's metrics).
    let t0 = Instant::now();
    while !std::fs::read_to_string(out.join("metrics.jsonl")).is_ok_and(|s| s.contains('\n')) {
        assert!(t0.elapsed() < Duration::from_secs(120), "no step finished");
        if let Some((r, st)) = ranks
            .iter_mut()
            .enumerate()
            .find_map(|(r, c)| c.try_wait().unwrap().map(|st| (r, st)))
        {
            ranks.iter_mut().for_each(|c| drop(c.kill()));
            panic!("rank {r} exited early ({st})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ranks[3].kill().unwrap();
    ranks[3].wait().unwrap();
    let t1 = Instant::now();
    let mut errs = String::new();
    for (r, c) in ranks.into_iter().enumerate().take(3) {
        let o = c.wait_with_output().unwrap();
        assert!(!o.status.success(), "rank {r} succeeded after rank 3 died");
        errs += &format!("[rank {r}] {}", stderr(&o));
    }
    assert!(errs.contains("rank(s) [3] left the group"), "{errs}");
    assert!(
        t1.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t1.elapsed()
    );
}
