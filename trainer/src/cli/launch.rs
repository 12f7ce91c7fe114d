//! `swerl launch --nproc N [--nnodes K --node-rank R --master-addr A --master-port P] -- CMD...`:
//! one process per local rank with torchrun's environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//! `LOCAL_WORLD_SIZE`, `GROUP_RANK`, `MASTER_ADDR`, `MASTER_PORT`), so commands written for
//! torchrun run unchanged and `torchrun --nproc-per-node N swerl train ...` works too.
//!
//! Output lines are forwarded with a `[rank i]` prefix. When a rank fails (non-zero exit or a
//! signal), the others are killed and launch exits non-zero naming it: a job with a dead rank
//! otherwise sits in its next collective until the timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// Processes (ranks) to start on this node; usually one per GPU.
    #[arg(long, alias = "nproc-per-node")]
    nproc: usize,
    /// Nodes in the job.
    #[arg(long, default_value_t = 1)]
    nnodes: usize,
    /// This node's index in `0..nnodes`.
    #[arg(long, default_value_t = 0)]
    node_rank: usize,
    /// Host of global rank 0 (reachable from every node).
    #[arg(long, default_value = "127.0.0.1")]
    master_addr: String,
    /// TCP port of the rendezvous store on the master.
    #[arg(long, default_value_t = 29500)]
    master_port: u16,
    /// The command each rank runs (`swerl ...` runs this binary).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The torchrun environment of local rank `local`.
pub fn rank_env(a: &Args, local: usize) -> Vec<(&'static str, String)> {
    let rank = a.node_rank * a.nproc + local;
    vec![
        ("RANK", rank.to_string()),
        ("WORLD_SIZE", (a.nnodes * a.nproc).to_string()),
        ("LOCAL_RANK", local.to_string()),
        ("LOCAL_WORLD_SIZE", a.nproc.to_string()),
        ("GROUP_RANK", a.node_rank.to_string()),
        ("MASTER_ADDR", a.master_addr.clone()),
        ("MASTER_PORT", a.master_port.to_string()),
    ]
}

/// Copies `from` line by line to `to`, each line prefixed with `prefix`.
fn forward(from: impl Read + Send + 'static, prefix: String, stderr: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            // A closed terminal is no reason to take the job down; drop the line.
            if stderr {
                let _ = writeln!(std::io::stderr().lock(), "{prefix}{line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{prefix}{line}");
            }
        }
    });
}

fn describe(s: ExitStatus) -> String {
    match s.code() {
        Some(c) => format!("exit code {c}"),
        None => format!("{s} (killed by a signal)"),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.nproc == 0 || a.nnodes == 0 {
        bail!("--nproc and --nnodes must be at least 1");
    }
    if a.node_rank >= a.nnodes {
        bail!(
            "--node-rank {} is not below --nnodes {}",
            a.node_rank,
            a.nnodes
        );
    }
    let program = match a.command[0].as_str() {
        "swerl" => std::env::current_exe().context("locating the swerl binary")?,
        p => p.into(),
    };
    let mut kids: Vec<(usize, Child)> = Vec::with_capacity(a.nproc);
    for local in 0..a.nproc {
        let env = rank_env(&a, local);
        let rank = a.node_rank * a.nproc + local;
        let spawned = Command::new(&program)
            .args(&a.command[1..])
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                stop(&mut kids);
                bail!("rank {rank}: cannot start {}: {e}", program.display());
            }
        };
        let prefix = format!("[rank {rank}] ");
        if let Some(o) = child.stdout.take() {
            forward(o, prefix.clone(), false);
        }
        if let Some(e) = child.stderr.take() {
            forward(e, prefix, true);
        }
        kids.push((rank, child));
    }
    let mut running = kids.len();
    while running > 0 {
        running = 0;
        let mut failed = None;
        for (rank, child) in kids.iter_mut() {
            match child.try_wait() {
                Ok(Some(s)) if !s.success() => failed = Some((*rank, describe(s))),
                Ok(Some(_)) => {}
                Ok(None) => running += 1,
                Err(e) => failed = Some((*rank, format!("cannot wait for it: {e}"))),
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some((rank, why)) = failed {
            let others = stop(&mut kids);
            bail!(
                "rank {rank} failed ({why}); stopped the other {others} running rank(s) on this node"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the forwarding threads drain what the ranks printed last.
    std::thread::sleep(Duration::from_millis(100));
    Ok(())
}

/// Kills every rank still running; returns how many were.
fn stop(kids: &mut [(usize, Child)]) -> usize {
    let mut n = 0;
    for (_, c) in kids.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            n += 1;
            let _ = c.kill();
        }
        let _ = c.wait();
    }
    std::thread::sleep(Duration::from_millis(100));
    n
}
