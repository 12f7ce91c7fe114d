//! `swerl sft`: supervised fine-tuning of a Hugging Face Llama folder on a JSONL file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use model::optim::{OptimConfig, Schedule};
use model::Llama;
use runtime::DType;
use trainer::sft::{self, Encoder, MetricsWriter, Packing, SftConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FloatDtype {
    F32,
    Bf16,
}

impl FloatDtype {
    fn dtype(self) -> DType {
        match self {
            FloatDtype::F32 => DType::F32,
            FloatDtype::Bf16 => DType::BF16,
        }
    }
}

/// What follows the warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleKind {
    Cosine,
    Constant,
}

#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model folder to start from (config, safetensors, tokenizer).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL: `{"prompt": ..., "completion": ...}` or `{"messages": [...]}` per line.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder for the trained model (and metrics.jsonl).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides --epochs).
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f32,
    /// Floor of the cosine schedule.
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f32,
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: ScheduleKind,
    /// Linear warmup steps (from 0, as Hugging Face's schedulers).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f32,
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f32,
    #[arg(long, default_value_t = 1e-8)]
    pub eps: f32,
    /// Global gradient-norm clipping threshold (0 disables).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f32,
    /// Rows per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Longer examples are truncated (default: 1024, or the model's context if shorter).
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    #[arg(long, value_enum, default_value = "pad")]
    pub packing: Packing,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Recompute activations in the backward (less memory, ~1/3 more compute).
    #[arg(long)]
    pub recompute: bool,
    /// Weights the forward reads: f32, or a bf16 copy of f32 master weights.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: FloatDtype,
    /// Metrics JSONL path (default: OUT/metrics.jsonl).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Dtype of the saved weights (default: the input config's, else f32).
    #[arg(long, value_enum)]
    pub save_dtype: Option<FloatDtype>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let enc = Encoder::from_dir(&a.model)?;
    let examples = sft::load_jsonl(&a.data, &enc)?;
    let model = Llama::load_as(&a.model, a.dtype.dtype())
        .with_context(|| format!("loading the model from {}", a.model.display()))?;
    let save_dtype = match a.save_dtype {
        Some(d) => d.dtype(),
        None => model.config.dtype.unwrap_or(DType::F32),
    };
    if a.lr <= 0.0 || a.min_lr < 0.0 || a.min_lr > a.lr {
        anyhow::bail!(
            "need 0 <= --min-lr <= --lr and --lr > 0 (got {} and {})",
            a.min_lr,
            a.lr
        );
    }
    let schedule = match a.schedule {
        ScheduleKind::Constant => Schedule::Constant,
        ScheduleKind::Cosine => Schedule::Cosine {
            total_steps: 0,
            min_ratio: a.min_lr / a.lr,
        },
    };
    let max_seq_len = a
        .max_seq_len
        .unwrap_or(1024.min(model.config.max_position_embeddings));
    let cfg = SftConfig {
        optim: OptimConfig {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: a.weight_decay,
            warmup_steps: a.warmup as u64,
            schedule,
            max_grad_norm: (a.max_grad_norm > 0.0).then_some(a.max_grad_norm),
        },
        batch_size: a.batch_size,
        grad_accum: a.grad_accum,
        max_seq_len,
        epochs: a.epochs,
        max_steps: a.steps,
        seed: a.seed,
        recompute: a.recompute,
        packing: a.packing,
        ..SftConfig::default()
    };
    let mut tr = sft::Trainer::new(model, cfg)?;
    let (prepared, _, _) = tr.prepare(&examples);
    let total = if prepared.is_empty() {
        0
    } else {
        tr.total_steps(&prepared)?
    };
    let metrics_path = a.metrics.unwrap_or_else(|| a.out.join("metrics.jsonl"));
    let mut metrics = MetricsWriter::create(&metrics_path)?;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}<{eta_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .expect("static template"),
    );
    let t0 = Instant::now();
    let summary = tr.fit(&examples, |s| {
        bar.set_message(format!(
            "loss {:.4} | lr {:.2e} | |g| {:.3} | {:.0} tok/s",
            s.loss, s.lr, s.grad_norm, s.tokens_per_s
        ));
        bar.inc(1);
        metrics.write(s)
    })?;
    bar.finish();
    let model = tr.into_model();
    model
        .save(&a.out, save_dtype, Some(&a.model))
        .with_context(|| format!("saving the model to {}", a.out.display()))?;
    println!(
        "sft: {} examples, {} steps in {:.1}s, loss {:.4} -> {:.4}{}{}; saved {} (metrics: {})",
        examples.len(),
        summary.steps,
        t0.elapsed().as_secs_f64(),
        summary.first_loss,
        summary.last_loss,
        if summary.truncated > 0 {
            format!(", {} truncated to {max_seq_len} tokens", summary.truncated)
        } else {
            String::new()
        },
        if summary.dropped > 0 {
            format!(", {} dropped (no targets left)", summary.dropped)
        } else {
            String::new()
        },
        a.out.display(),
        metrics_path.display()
    );
    Ok(())
}
