//! `swerl plan`: will a run fit? Bytes of weights, gradients, optimizer state, activations,
//! KV cache and the peak, per dtype.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use model::{Llama, LlamaConfig};
use runtime::{DType, Rng};
use trainer::plan::{self, PlanRequest, PRESETS};
use trainer::sft::{Batch, SftConfig, Trainer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanDtype {
    F32,
    Bf16,
}

impl PlanDtype {
    fn dtype(self) -> DType {
        match self {
            PlanDtype::F32 => DType::F32,
            PlanDtype::Bf16 => DType::BF16,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// A Hugging Face model folder (only config.json is read).
    #[arg(long, conflicts_with = "config", required_unless_present = "config")]
    pub model: Option<PathBuf>,
    /// A named shape: tiny, small, llama-3.2-1b, llama-3.2-3b, llama-3.1-8b.
    #[arg(long)]
    pub config: Option<String>,
    /// Sequences per step.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long)]
    pub seq: usize,
    #[arg(long)]
    pub recompute: bool,
    /// Only this dtype (default: a column for each).
    #[arg(long, value_enum)]
    pub dtype: Option<PlanDtype>,
    /// One JSON line per dtype instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run one real f32 train step (forward, backward, AdamW) of this shape and report the
    /// process's peak RSS next to the plan (used by the planner's test).
    #[arg(long, hide = true)]
    pub measure: bool,
}

fn load_config(a: &Args) -> anyhow::Result<(String, LlamaConfig)> {
    if let Some(dir) = &a.model {
        let c = LlamaConfig::from_file(&dir.join("config.json"))?;
        return Ok((dir.display().to_string(), c));
    }
    let name = a.config.as_deref().unwrap_or_default();
    match plan::preset(name) {
        Some(c) => Ok((format!("{name} config"), c)),
        None => bail!("unknown --config `{name}` (known: {})", PRESETS.join(", ")),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (what, c) = load_config(&a)?;
    let dtypes = match a.dtype {
        Some(d) => vec![d],
        None => vec![PlanDtype::F32, PlanDtype::Bf16],
    };
    if a.measure {
        return measure(&a, c);
    }
    let plans = dtypes
        .iter()
        .map(|d| {
            plan::plan(
                &c,
                &PlanRequest {
                    batch: a.batch,
                    seq: a.seq,
                    recompute: a.recompute,
                    dtype: d.dtype(),
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    if a.json {
        for p in &plans {
            println!("{}", serde_json::to_string(p)?);
        }
        return Ok(());
    }
    println!(
        "{what}: {:.1}M parameters, batch {} x {} tokens, recompute {}",
        plans[0].parameters as f64 / 1e6,
        a.batch,
        a.seq,
        if a.recompute { "on" } else { "off" }
    );
    print!("{}", plan::render_table(&plans));
    println!("(process overhead — code, allocator, thread stacks — comes on top)");
    Ok(())
}

/// Peak resident set size of this process (`VmHWM`), in bytes.
fn peak_rss() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("/proc/self/status has no VmHWM line")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .with_context(|| format!("unreadable line `{line}`"))?;
    Ok(kb * 1024)
}

fn measure(a: &Args, c: LlamaConfig) -> anyhow::Result<()> {
    if a.dtype.is_some_and(|d| d != PlanDtype::F32) {
        bail!("--measure runs f32 training only");
    }
    let planned = plan::plan(
        &c,
        &PlanRequest {
            batch: a.batch,
            seq: a.seq,
            recompute: a.recompute,
            dtype: DType::F32,
        },
    )?;
    let before = peak_rss()?;
    let model = match &a.model {
        Some(dir) => Llama::load(dir)?,
        None => Llama::random(c.clone(), DType::F32, 0)?,
    };
    let cfg = SftConfig {
        batch_size: a.batch,
        max_seq_len: a.seq,
        recompute: a.recompute,
        ..SftConfig::default()
    };
    let mut tr = Trainer::new(model, cfg)?;
    let mut rng = Rng::new(1);
    let v = c.vocab_size as u64;
    let rows: Vec<Vec<u32>> = (0..a.batch)
        .map(|_| (0..a.seq).map(|_| rng.below(v) as u32).collect())
        .collect();
    let batch = Batch {
        rows,
        mask: vec![true; a.batch * a.seq],
        seq: a.seq,
        real_tokens: a.batch * a.seq,
    };
    let t0 = Instant::now();
    let s = tr.train_step(&[batch])?;
    let out = serde_json::json!({
        "measured_peak_rss": peak_rss()?,
        "rss_before_model": before,
        "planned_train_peak": planned.train_peak,
        "plan": planned,
        "loss": s.loss,
        "step_seconds": t0.elapsed().as_secs_f64(),
    });
    println!("{out}");
    Ok(())
}
