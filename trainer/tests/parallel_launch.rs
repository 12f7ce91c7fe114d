//! `swerl launch` and multi-process data parallelism through the real binary: the torchrun
//! environment reaches every rank, a failing rank stops the job naming it, and `swerl train`
//! over two launched processes (TCP collectives) ends with the same checkpoint as `--dp 2`
//! (two ranks as threads).

mod cli_support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use cli_support::{free_port, metrics, mined_dataset, swerl, write_config};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn parallel_launch_sets_the_torchrun_env_per_rank() {
    let out = swerl()
        .args(["launch", "--nproc", "2", "--nnodes", "2", "--node-rank", "1"])
        .args(["--master-addr", "10.1.2.3", "--master-port", "29511", "--"])
        .args(["sh", "-c", "echo R=$RANK W=$WORLD_SIZE L=$LOCAL_RANK LW=$LOCAL_WORLD_SIZE G=$GROUP_RANK A=$MASTER_ADDR P=$MASTER_PORT"])
        .output()
        .unwrap();
    let (so, se) = text(&out);
    assert!(out.status.success(), "{se}");
    for (r, l) in [(2, 0), (3, 1)] {
        let want = format!("[rank {r}] R={r} W=4 L={l} LW=2 G=1 A=10.1.2.3 P=29511");
        assert!(so.lines().any(|x| x == want), "missing `{want}` in:\n{so}");
    }
}

#[test]
fn parallel_launch_stops_the_job_when_a_rank_dies_and_names_it() {
    let t0 = Instant::now();
    let out = swerl()
        .args([
            "launch",
            "--nproc",
            "3",
            "--master-port",
            &free_port(),
            "--",
        ])
        .args([
            "sh",
            "-c",
            "echo up; if [ $RANK = 1 ]; then sleep 0.3; exit 7; fi; sleep 60",
        ])
        .output()
        .unwrap();
    let (so, se) = text(&out);
    assert!(!out.status.success());
    assert!(
        se.contains("rank 1 failed (exit code 7); stopped the other 2 running rank(s)"),
        "{se}"
    );
    assert_eq!(so.matches("] up").count(), 3, "{so}");
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn parallel_train_two_processes_equals_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let data = mined_dataset(dir.path());
    let cfg = write_config(dir.path(), &data);
    let (threads, procs) = (dir.path().join("threads"), dir.path().join("procs"));
    let out = swerl()
        .args(["train", "--quiet", "--dp", "2", "--config"])
        .arg(&cfg)
        .arg("--output_dir")
        .arg(&threads)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let out = swerl()
        .args([
            "launch",
            "--nproc",
            "2",
            "--master-port",
            &free_port(),
            "--",
        ])
        .args(["swerl", "train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--output_dir")
        .arg(&procs)
        .env("SWERL_COMM_TIMEOUT", "60")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let (a, b) = (metrics(&threads), metrics(&procs));
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["dp_world"], 2);
        assert!(x["comm_bytes"].as_u64().unwrap() > 0);
        for k in ["loss", "kl", "reward_mean", "grad_norm", "comm_bytes"] {
            assert_eq!(x[k], y[k], "{k}: threads vs processes");
        }
    }
    let weights = |d: &Path| std::fs::read(d.join("checkpoint-000002/model.safetensors")).unwrap();
    assert!(
        weights(&threads) == weights(&procs),
        "the checkpoints of the threaded and multi-process runs differ"
    );
}

#[test]
fn parallel_bench_comm_reports_every_size_for_threads_and_tcp() {
    for backend in ["threads", "tcp"] {
        let out = swerl()
            .args(["bench", "comm", "--backend", backend, "--ranks", "3"])
            .args(["--min-bytes", "1024", "--max-bytes", "16384", "--json"])
            .output()
            .unwrap();
        let (so, se) = text(&out);
        assert!(out.status.success(), "{backend}: {se}");
        let rows: Vec<serde_json::Value> = so
            .lines()
            .filter_map(|l| l.find('{').map(|i| serde_json::from_str(&l[i..]).unwrap()))
            .collect();
        let sizes: Vec<u64> = rows.iter().map(|r| r["bytes"].as_u64().unwrap()).collect();
        assert_eq!(sizes, [1024, 4096, 16384], "{backend}: {so}");
        for r in &rows {
            assert_eq!(r["ranks"], 3);
            let (alg, bus) = (
                r["algbw_gbps"].as_f64().unwrap(),
                r["busbw_gbps"].as_f64().unwrap(),
            );
            assert!(
                alg > 0.0 && (bus - alg * 4.0 / 3.0).abs() < 1e-9 * bus.max(1.0),
                "{r}"
            );
        }
    }
}
