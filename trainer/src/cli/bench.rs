//! `swerl bench <what>`: throughput benchmarks on synthetic models. Each benchmark is a
//! subcommand; numbers go to stdout for people and, with `--json`, as one JSON line.

use std::time::Instant;

use anyhow::bail;
use model::layers::lm_head::shifted_targets;
use model::optim::{AdamW, OptimConfig};
use model::{Activations, GradBuffers, InferBuffers, KvCache, Llama, LlamaConfig};
use runtime::{DType, Rng, Tensor};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: Bench,
}

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Prefill and KV-cache decode tokens/s of a random-weight model.
    Decode(DecodeArgs),
    /// Training step (forward + backward + AdamW) tokens/s and peak RSS.
    Train(TrainArgs),
    /// All-reduce bus bandwidth over message sizes: in-process threads, TCP processes, NCCL.
    Comm(super::bench_comm::CommArgs),
    /// One GRPO step split into generation / reward / log-probs / backward / optimizer.
    Grpo(super::bench_grpo::GrpoArgs),
    /// Every op's time and GB/s or TFLOP/s next to the device's copy / cuBLASLt ceiling.
    Kernels(super::bench_kernels::KernelsArgs),
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Model shape (see `bench decode`).
    #[arg(long, default_value = "small")]
    pub config: String,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Timed steps (after one untimed warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Recompute each layer's activations in the backward instead of storing them.
    #[arg(long)]
    pub recompute: bool,
    /// Also print one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct DecodeArgs {
    /// Model shape: `small` (hidden 512, 8 layers, 8 heads, 4 KV heads, ffn 1408, vocab 2048)
    /// or `tiny` (the test fixture's shape).
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    pub batch: Vec<usize>,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub prompt_len: usize,
    /// Decode steps timed per batch size.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Also print one JSON line per batch size.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.what {
        Bench::Decode(d) => decode(d),
        Bench::Train(t) => train(t),
        Bench::Comm(c) => super::bench_comm::run(c),
        Bench::Grpo(g) => super::bench_grpo::run(g),
        Bench::Kernels(k) => super::bench_kernels::run(k),
    }
}

pub fn named_config(name: &str) -> anyhow::Result<LlamaConfig> {
    Ok(match name {
        "small" => LlamaConfig::new(512, 8, 8, 4, 1408, 2048, 2048, false)?,
        "tiny" => LlamaConfig::new(64, 2, 4, 2, 176, 2048, 512, false)?,
        other => bail!("unknown --config `{other}` (small, tiny)"),
    })
}

fn decode(a: DecodeArgs) -> anyhow::Result<()> {
    let cfg = named_config(&a.config)?;
    if a.prompt_len == 0 || a.new_tokens == 0 || a.batch.contains(&0) {
        bail!("--prompt-len, --new-tokens and every --batch must be positive");
    }
    let m = Llama::random(cfg.clone(), DType::F32, 0)?;
    println!(
        "bench decode: config {} ({:.1}M params, fp32), prompt {} tokens, {} decode steps, {} threads",
        a.config,
        cfg.num_params() as f64 / 1e6,
        a.prompt_len,
        a.new_tokens,
        rayon::current_num_threads()
    );
    let mut rng = Rng::new(1);
    for &b in &a.batch {
        let ids: Vec<i64> = (0..b * a.prompt_len)
            .map(|_| rng.below(cfg.vocab_size as u64) as i64)
            .collect();
        let ids = Tensor::from_vec(ids, &[b, a.prompt_len])?;
        let mut cache = KvCache::new(
            &cfg,
            b,
            a.prompt_len + a.new_tokens + 1,
            DType::F32,
            &m.device,
        )?;
        let mut pre = InferBuffers::new(&m, b, a.prompt_len)?;
        let picks = vec![a.prompt_len - 1; b];
        // One untimed prefill warms caches and the thread pool.
        m.forward_cached(&ids, &vec![0; b], &picks, &mut cache, &mut pre)?;
        let t0 = Instant::now();
        m.forward_cached(&ids, &vec![0; b], &picks, &mut cache, &mut pre)?;
        let prefill_s = t0.elapsed().as_secs_f64();
        let greedy = runtime::SamplingParams::greedy();
        let mut next = runtime::sample(&pre.logits, &greedy, &mut rng)?;
        drop(pre);

        let mut step = InferBuffers::new(&m, b, 1)?;
        let mut lens = vec![a.prompt_len; b];
        let (t0, c0) = (Instant::now(), cpu_seconds());
        for _ in 0..a.new_tokens {
            let tok: Vec<i64> = next.iter().map(|&x| x as i64).collect();
            let tok = Tensor::from_vec(tok, &[b, 1])?;
            m.forward_cached(&tok, &lens, &vec![0; b], &mut cache, &mut step)?;
            next = runtime::sample(&step.logits, &greedy, &mut rng)?;
            for l in lens.iter_mut() {
                *l += 1;
            }
        }
        let decode_s = t0.elapsed().as_secs_f64();
        let decode_cpu = cpu_seconds() - c0;
        let prefill_tps = (b * a.prompt_len) as f64 / prefill_s;
        let decode_tps = (b * a.new_tokens) as f64 / decode_s;
        println!(
            "batch {b:>3}: prefill {prefill_tps:>9.1} tokens/s   decode {decode_tps:>8.1} tokens/s ({:.2} ms/step, {:.1} tokens per CPU-second)",
            decode_s * 1e3 / a.new_tokens as f64,
            (b * a.new_tokens) as f64 / decode_cpu
        );
        if a.json {
            let j = serde_json::json!({
                "bench": "decode", "config": a.config, "batch": b, "prompt_len": a.prompt_len,
                "new_tokens": a.new_tokens, "prefill_tokens_per_s": prefill_tps,
                "decode_tokens_per_s": decode_tps,
                "decode_tokens_per_cpu_s": (b * a.new_tokens) as f64 / decode_cpu,
            });
            println!("{j}");
        }
    }
    Ok(())
}

/// CPU seconds (user + system) this process has used: with other jobs sharing the machine,
/// tokens per CPU-second is the steadier number.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is the 1st, utime/stime the 12th/13th.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(st)) => (u + st) as f64 / 100.0,
        _ => f64::NAN,
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let cfg = named_config(&a.config)?;
    if a.batch == 0 || a.seq < 2 || a.steps == 0 {
        bail!("--batch and --steps must be positive and --seq at least 2");
    }
    let mut m = Llama::random(cfg.clone(), DType::F32, 0)?;
    let mut rng = Rng::new(2);
    let ids: Vec<i64> = (0..a.batch * a.seq)
        .map(|_| rng.below(cfg.vocab_size as u64) as i64)
        .collect();
    let targets = shifted_targets(&ids, a.batch, a.seq, None)?;
    let ids = Tensor::from_vec(ids, &[a.batch, a.seq])?;
    let mut acts = Activations::new(&cfg, a.batch, a.seq, a.recompute, &m.device)?;
    let mut bufs = GradBuffers::new(&cfg, a.batch, a.seq, &m.device)?;
    let mut grads = m.zero_grads()?;
    let mut opt = AdamW::new(
        &m,
        OptimConfig {
            lr: 1e-4,
            ..Default::default()
        },
    )?;
    println!(
        "bench train: config {} ({:.1}M params, fp32), batch {} x {} tokens, recompute {}, {} threads",
        a.config,
        cfg.num_params() as f64 / 1e6,
        a.batch,
        a.seq,
        a.recompute,
        rayon::current_num_threads()
    );
    let mut step = |m: &mut Llama| -> anyhow::Result<f64> {
        grads.zero()?;
        m.forward(&ids, &mut acts)?;
        let loss = m.loss(&mut acts, &targets)?;
        m.backward(
            &ids,
            &targets,
            &mut acts,
            &mut grads,
            &mut bufs,
            1.0 / loss.count as f32,
        )?;
        opt.step(m, &grads)?;
        Ok(loss.mean)
    };
    step(&mut m)?;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut loss = 0.0;
    for _ in 0..a.steps {
        loss = step(&mut m)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let tokens = (a.batch * a.seq * a.steps) as f64;
    let tps = tokens / secs;
    let rss = peak_rss_bytes().map_or(f64::NAN, |b| b as f64 / (1u64 << 30) as f64);
    println!(
        "train step: {tps:.1} tokens/s ({:.0} ms/step), {:.1} tokens per CPU-second, peak RSS {rss:.2} GiB, last loss {loss:.4}",
        secs * 1e3 / a.steps as f64,
        tokens / cpu
    );
    if a.json {
        let j = serde_json::json!({
            "bench": "train", "config": a.config, "batch": a.batch, "seq": a.seq,
            "recompute": a.recompute, "tokens_per_s": tps, "tokens_per_cpu_s": tokens / cpu,
            "peak_rss_gib": rss,
        });
        println!("{j}");
    }
    Ok(())
}
