//! One JSON line per step in `<output_dir>/metrics.jsonl` (flushed each step, so a crashed run
//! keeps its curve); resuming drops the lines of steps after the checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::step::{StepReport, Timings};
use super::{io_err, Result};

pub const METRICS_FILE: &str = "metrics.jsonl";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTimes {
    pub generate: f64,
    pub reward: f64,
    pub logprobs: f64,
    pub backward: f64,
    pub optimizer: f64,
    pub total: f64,
    /// Of `backward`: the wait for the data-parallel gradient sync after the backward.
    #[serde(default)]
    pub grad_sync: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based number of the step just completed.
    pub step: usize,
    pub learning_rate: f64,
    pub loss: f64,
    pub reward_mean: f64,
    pub reward_std: f64,
    pub reward_min: f64,
    pub reward_max: f64,
    pub format_error_rate: f64,
    pub clip_fraction: f64,
    pub kl: f64,
    pub grad_norm: f64,
    pub completion_length_mean: f64,
    pub completion_length_max: usize,
    pub truncated_rate: f64,
    /// Instances skipped so far because their prompt exceeded `max_prompt_length`.
    pub prompts_skipped: usize,
    pub generation_tokens_per_s: f64,
    pub training_tokens_per_s: f64,
    pub time_s: StepTimes,
    /// Data-parallel ranks the step ran on (lines written before the field existed were
    /// single-process runs: they read as 1).
    #[serde(default = "one")]
    pub dp_world: usize,
    /// Bytes this rank sent into collectives during the step (gradient all-reduce buckets
    /// plus the small reward/statistics gathers), and how many collectives that took.
    #[serde(default)]
    pub comm_bytes: usize,
    #[serde(default)]
    pub comm_collectives: usize,
    /// Bytes of AdamW state (moments, master weights when kept) this rank holds: the whole
    /// model's without ZeRO-1, about 1/dp of it with.
    #[serde(default)]
    pub optimizer_state_bytes: usize,
}

fn one() -> usize {
    1
}

fn rate(num: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        num / secs
    } else {
        0.0
    }
}

impl StepMetrics {
    pub fn from_report(step: usize, lr: f64, r: &StepReport, skipped: usize, total_s: f64) -> Self {
        let n = r.rewards.len().max(1) as f64;
        let mean = r.rewards.iter().sum::<f64>() / n;
        let var = r
            .rewards
            .iter()
            .map(|x| (x - mean) * (x - mean))
            .sum::<f64>()
            / (r.rewards.len().saturating_sub(1).max(1)) as f64;
        let t: &Timings = &r.timings;
        let lens = r.completion_lens.len().max(1) as f64;
        StepMetrics {
            step,
            learning_rate: lr,
            loss: r.loss,
            reward_mean: mean,
            reward_std: var.sqrt(),
            reward_min: r.rewards.iter().copied().fold(f64::INFINITY, f64::min),
            reward_max: r.rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            format_error_rate: r.format_errors as f64 / n,
            clip_fraction: r.clip_fraction,
            kl: r.kl,
            grad_norm: r.grad_norm,
            completion_length_mean: r.completion_lens.iter().sum::<usize>() as f64 / lens,
            completion_length_max: r.completion_lens.iter().copied().max().unwrap_or(0),
            truncated_rate: r.truncated as f64 / lens,
            prompts_skipped: skipped,
            generation_tokens_per_s: rate(r.generated_tokens as f64, t.generate),
            training_tokens_per_s: rate(r.trained_tokens as f64, t.backward),
            time_s: StepTimes {
                generate: t.generate,
                reward: t.reward,
                logprobs: t.logprobs,
                backward: t.backward,
                optimizer: t.optimizer,
                total: total_s,
                grad_sync: t.grad_sync,
            },
            dp_world: 1,
            comm_bytes: 0,
            comm_collectives: 0,
            optimizer_state_bytes: 0,
        }
    }
}

/// Appends metric lines to a run folder's `metrics.jsonl`.
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens the file for appending, first dropping lines with `step > keep_until` (a resumed
    /// run rewrites the steps it redoes); `keep_until = 0` starts a fresh file.
    pub fn open(output_dir: &Path, keep_until: usize) -> Result<Self> {
        fs::create_dir_all(output_dir).map_err(io_err(output_dir))?;
        let path = output_dir.join(METRICS_FILE);
        let kept: Vec<String> = if keep_until > 0 && path.exists() {
            read_metrics(&path)?
                .into_iter()
                .filter(|m| m.step <= keep_until)
                .map(|m| serde_json::to_string(&m).expect("metrics serialise"))
                .collect()
        } else {
            Vec::new()
        };
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        model::safetensors_io::write_atomic(&path, text.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(MetricsWriter { path, file })
    }

    pub fn write(&mut self, m: &StepMetrics) -> Result<()> {
        let line = serde_json::to_string(m).expect("metrics serialise");
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .map_err(io_err(&self.path))
    }
}

/// Every line of a metrics file; a bad line is an error naming its number.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| {
            super::TrainError::Invalid(format!("{}:{}: {e}", path.display(), i + 1))
        })?);
    }
    Ok(out)
}
