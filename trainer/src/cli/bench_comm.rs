//! `swerl bench comm`: all-reduce bandwidth over message sizes, for the in-process group
//! (`--backend threads`: one thread per rank), the cross-process TCP group (`--backend tcp`)
//! and NCCL (`--backend nccl`, or `--device cuda`). Without a torchrun environment the tcp and
//! nccl backends start themselves through `swerl launch --nproc <ranks>`.
//!
//! Bus bandwidth is NCCL-tests' figure, `2 (n - 1) / n * bytes / time`: what each link
//! carries in a ring all-reduce, comparable across rank counts.

use std::time::Instant;

use anyhow::{bail, Context};
use runtime::comm::{Communicator, DistEnv, ThreadGroup};
use runtime::{DType, Device, Tensor};
use trainer::dp::DataParallel;

#[derive(clap::Args, Clone)]
pub struct CommArgs {
    /// threads, tcp or nccl.
    #[arg(long, default_value = "threads")]
    pub backend: String,
    /// `cuda` selects the nccl backend.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Ranks (threads, or processes when not already launched).
    #[arg(long, default_value_t = 2)]
    pub ranks: usize,
    /// Smallest message in bytes (sizes grow by 4x).
    #[arg(long, default_value_t = 1 << 10)]
    pub min_bytes: usize,
    /// Largest message in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_bytes: usize,
    /// Bytes moved per size (iterations = this / size, at least 2, at most 200).
    #[arg(long, default_value_t = 256 << 20)]
    pub budget_bytes: usize,
    /// Also print one JSON line per size.
    #[arg(long)]
    pub json: bool,
}

fn sizes(a: &CommArgs) -> Vec<usize> {
    let mut out = Vec::new();
    let mut b = a.min_bytes.max(4);
    while b <= a.max_bytes {
        out.push(b);
        b *= 4;
    }
    out
}

fn iters(a: &CommArgs, bytes: usize) -> usize {
    (a.budget_bytes / bytes).clamp(2, 200)
}

/// Seconds per all-reduce of `bytes` on this rank (after a warm-up), timed between barriers
/// so the slowest rank sets the figure.
fn time_size(
    c: &mut dyn Communicator,
    bytes: usize,
    n: usize,
    dev: &Device,
) -> anyhow::Result<f64> {
    let mut t = Tensor::zeros(&[bytes / 4], DType::F32, dev)?;
    c.all_reduce_sum(&mut t)?;
    c.barrier()?;
    let t0 = Instant::now();
    for _ in 0..n {
        c.all_reduce_sum(&mut t)?;
    }
    c.barrier()?;
    Ok(t0.elapsed().as_secs_f64() / n as f64)
}

fn report(backend: &str, ranks: usize, bytes: usize, secs: f64, json: bool) {
    let alg = bytes as f64 / secs / 1e9;
    let bus = alg * 2.0 * (ranks as f64 - 1.0) / ranks as f64;
    println!(
        "{backend:>7} {ranks:>5} {:>12} {:>12.1} {alg:>11.3} {bus:>11.3}",
        human(bytes),
        secs * 1e6
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": "comm", "backend": backend, "ranks": ranks, "bytes": bytes,
                "time_us": secs * 1e6, "algbw_gbps": alg, "busbw_gbps": bus})
        );
    }
}

fn human(b: usize) -> String {
    match b {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

fn header() {
    println!(
        "{:>7} {:>5} {:>12} {:>12} {:>11} {:>11}",
        "backend", "ranks", "size", "time_us", "algbw_GB/s", "busbw_GB/s"
    );
}

pub fn run(mut a: CommArgs) -> anyhow::Result<()> {
    if a.device == "cuda" {
        a.backend = "nccl".into();
    } else if a.device != "cpu" {
        bail!("unknown --device `{}` (cpu, cuda)", a.device);
    }
    if a.ranks == 0 || a.min_bytes > a.max_bytes {
        bail!("need --ranks >= 1 and --min-bytes <= --max-bytes");
    }
    match a.backend.as_str() {
        "threads" => threads(&a),
        "tcp" | "nccl" => match DistEnv::from_env()? {
            Some(_) => launched(&a),
            None => self_launch(&a),
        },
        other => bail!("unknown --backend `{other}` (threads, tcp, nccl)"),
    }
}

fn threads(a: &CommArgs) -> anyhow::Result<()> {
    header();
    for bytes in sizes(a) {
        let n = iters(a, bytes);
        let secs = std::thread::scope(|s| -> anyhow::Result<f64> {
            let hs: Vec<_> = ThreadGroup::new(a.ranks)?
                .into_iter()
                .map(|mut c| s.spawn(move || time_size(&mut c, bytes, n, &Device::Cpu)))
                .collect();
            let mut worst = 0f64;
            for h in hs {
                let t = h
                    .join()
                    .map_err(|_| anyhow::anyhow!("a rank thread panicked"))??;
                worst = worst.max(t);
            }
            Ok(worst)
        })?;
        report("threads", a.ranks, bytes, secs, a.json);
    }
    Ok(())
}

/// One rank of a launched job; rank 0 prints.
fn launched(a: &CommArgs) -> anyhow::Result<()> {
    let cuda = a.backend == "nccl";
    let mut dp = DataParallel::from_env(cuda)?.context("no torchrun environment")?;
    let dev = if cuda { cuda_device()? } else { Device::Cpu };
    let (rank, world) = (dp.rank(), dp.world_size());
    if rank == 0 {
        header();
    }
    for bytes in sizes(a) {
        let secs = time_size(dp.comm(), bytes, iters(a, bytes), &dev)?;
        if rank == 0 {
            report(&a.backend, world, bytes, secs, a.json);
        }
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn cuda_device() -> anyhow::Result<Device> {
    let env = DistEnv::from_env()?.context("no torchrun environment")?;
    Ok(Device::Cuda(env.local_rank))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> anyhow::Result<Device> {
    bail!("--backend nccl needs a build with `--features cuda`")
}

/// Re-runs this benchmark under `swerl launch --nproc <ranks>` on a free local port.
fn self_launch(a: &CommArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the swerl binary")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut args: Vec<String> = vec![
        "launch".into(),
        "--nproc".into(),
        a.ranks.to_string(),
        "--master-port".into(),
        port.to_string(),
        "--".into(),
        "swerl".into(),
        "bench".into(),
        "comm".into(),
    ];
    for (k, v) in [
        ("--backend", a.backend.clone()),
        ("--min-bytes", a.min_bytes.to_string()),
        ("--max-bytes", a.max_bytes.to_string()),
        ("--budget-bytes", a.budget_bytes.to_string()),
    ] {
        args.push(k.into());
        args.push(v);
    }
    if a.json {
        args.push("--json".into());
    }
    let st = std::process::Command::new(exe).args(&args).status()?;
    if !st.success() {
        bail!("swerl launch of the {} benchmark failed ({st})", a.backend);
    }
    Ok(())
}
