//! Run configuration: a TOML file plus `--key value` overrides from the command line, applied to
//! the TOML table *before* typed deserialisation so an override is checked exactly like a line
//! of the file (unknown keys and wrong types are errors naming the key).

use std::path::{Path, PathBuf};

use crate::grpo::{LossConfig, LossType, ScaleRewards};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {message}")]
    Parse { path: String, message: String },
    #[error("override `{arg}`: {message}")]
    Override { arg: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// Reads a TOML file into a table (an absent path gives an empty table, for CLI-only runs).
pub fn read_table(path: Option<&Path>) -> Result<toml::Table, ConfigError> {
    let Some(path) = path else {
        return Ok(toml::Table::new());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Applies `--key value` / `--key=value` pairs (dotted keys reach into sub-tables). A value is
/// read as a TOML value when it parses as one (`3`, `0.5`, `true`, `[1,2]`), else as a string,
/// so `--model ./dir` needs no quoting.
pub fn apply_overrides(table: &mut toml::Table, args: &[String]) -> Result<(), ConfigError> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(body) = arg.strip_prefix("--") else {
            return Err(ConfigError::Override {
                arg: arg.clone(),
                message: "expected --key value".into(),
            });
        };
        let (key, raw) = match body.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let v = args.get(i + 1).ok_or_else(|| ConfigError::Override {
                    arg: arg.clone(),
                    message: "missing value".into(),
                })?;
                i += 1;
                (body.to_string(), v.clone())
            }
        };
        i += 1;
        let key = key.replace('-', "_");
        let value = parse_value(&raw);
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut cur = &mut *table;
        for p in parts {
            let entry = cur
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = entry.as_table_mut().ok_or_else(|| ConfigError::Override {
                arg: arg.clone(),
                message: format!("`{p}` is not a table"),
            })?;
        }
        if last.is_empty() {
            return Err(ConfigError::Override {
                arg: arg.clone(),
                message: "empty key".into(),
            });
        }
        cur.insert(last.to_string(), value);
    }
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Deserialises a table into a typed config; serde's message names the offending key.
pub fn from_table<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, ConfigError> {
    T::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    Constant,
    /// Linear decay to 0 at the last step (transformers' default).
    Linear,
    Cosine,
}

fn d_output_dir() -> PathBuf {
    PathBuf::from("runs/grpo")
}
fn d_per_step_problems() -> usize {
    32
}
fn d_num_generations() -> usize {
    16
}
fn d_epsilon() -> f64 {
    0.2
}
fn d_loss_type() -> LossType {
    LossType::Grpo
}
fn d_scale_rewards() -> ScaleRewards {
    ScaleRewards::Group
}
fn d_learning_rate() -> f64 {
    1e-6
}
fn d_lr_schedule() -> LrSchedule {
    LrSchedule::Constant
}
fn d_adam_beta1() -> f64 {
    0.9
}
fn d_adam_beta2() -> f64 {
    0.999
}
fn d_adam_epsilon() -> f64 {
    1e-8
}
fn d_max_grad_norm() -> f64 {
    1.0
}
fn d_max_prompt_length() -> usize {
    2048
}
fn d_max_completion_length() -> usize {
    512
}
fn d_one() -> f64 {
    1.0
}
fn d_steps() -> usize {
    100
}
fn d_seed() -> u64 {
    42
}
fn d_save_steps() -> usize {
    50
}
fn d_num_iterations() -> usize {
    1
}
fn d_micro_batch() -> usize {
    8
}

fn d_bucket_mb() -> f64 {
    (crate::dp::DEFAULT_BUCKET_BYTES >> 20) as f64
}

/// `swerl train`'s configuration; names and defaults follow TRL's `GRPOConfig` where TRL has
/// the knob, and SWE-RL's run (32 problems × 16 rollouts per step) otherwise.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    /// Hugging Face model folder of the initial policy (and of the frozen reference).
    pub model: PathBuf,
    /// Dataset directory (or shard) written by `swerl mine`.
    pub data_dir: PathBuf,
    #[serde(default = "d_output_dir")]
    pub output_dir: PathBuf,
    #[serde(default = "d_per_step_problems")]
    pub per_step_problems: usize,
    #[serde(default = "d_num_generations")]
    pub num_generations: usize,
    #[serde(default)]
    pub beta: f64,
    #[serde(default = "d_epsilon")]
    pub epsilon: f64,
    /// Upper clip `1 + epsilon_high`; defaults to `epsilon`.
    #[serde(default)]
    pub epsilon_high: Option<f64>,
    #[serde(default = "d_loss_type")]
    pub loss_type: LossType,
    #[serde(default = "d_scale_rewards")]
    pub scale_rewards: ScaleRewards,
    #[serde(default = "d_learning_rate")]
    pub learning_rate: f64,
    #[serde(default = "d_lr_schedule")]
    pub lr_schedule: LrSchedule,
    #[serde(default)]
    pub warmup_steps: usize,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "d_adam_beta1")]
    pub adam_beta1: f64,
    #[serde(default = "d_adam_beta2")]
    pub adam_beta2: f64,
    #[serde(default = "d_adam_epsilon")]
    pub adam_epsilon: f64,
    /// Global L2 gradient-norm clip; 0 disables.
    #[serde(default = "d_max_grad_norm")]
    pub max_grad_norm: f64,
    #[serde(default = "d_max_prompt_length")]
    pub max_prompt_length: usize,
    #[serde(default = "d_max_completion_length")]
    pub max_completion_length: usize,
    #[serde(default = "d_one")]
    pub temperature: f64,
    #[serde(default = "d_one")]
    pub top_p: f64,
    #[serde(default)]
    pub top_k: usize,
    #[serde(default = "d_steps")]
    pub steps: usize,
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Checkpoint every this many steps (and after the last); 0 saves only at the end.
    #[serde(default = "d_save_steps")]
    pub save_steps: usize,
    /// μ: optimizer steps per generated batch (old log-probs are computed when > 1).
    #[serde(default = "d_num_iterations")]
    pub num_iterations: usize,
    /// Truncated completions (no EOS within `max_completion_length`) count no loss tokens.
    #[serde(default)]
    pub mask_truncated_completions: bool,
    /// Sequences per forward/backward chunk (bounds activation memory; gradients accumulate).
    #[serde(default = "d_micro_batch")]
    pub micro_batch: usize,
    /// A prompt template file (TOML with `system` and `user`, see `crate::prompt`); default:
    /// the built-in SWE-RL prompt.
    #[serde(default)]
    pub prompt_template: Option<PathBuf>,
    /// Show each modified file as its changed lines plus this many lines either side (the
    /// rest elided as `...`) instead of whole; it localises the change for the model, a
    /// curriculum for small models. Default: whole files, as SWE-RL.
    #[serde(default)]
    pub context_window: Option<usize>,
    /// ZeRO-1 under data parallelism: each rank keeps and updates only its shard of the AdamW
    /// state, then the weights are all-gathered (same updates, ~1/dp of the optimizer
    /// memory per rank); with `--tp`, each TP rank's state is sharded over its DP group.
    /// Ignored with one DP rank.
    #[serde(default)]
    pub zero1: bool,
    /// Overlap the data-parallel gradient all-reduce with the backward (buckets leave as
    /// layers finish). Default: on for in-process and TCP ranks, off for NCCL; ZeRO-1 and
    /// `--tp` > 1 sync after the backward, so `true` is refused with them.
    #[serde(default)]
    pub overlap_grad_sync: Option<bool>,
    /// Size in MiB of a data-parallel gradient bucket (one collective each; ZeRO-1's
    /// reduce-scatter and all-gather use it too): smaller ones start the overlapped sync
    /// sooner, larger ones issue fewer calls. Default 25, as PyTorch DDP.
    #[serde(default = "d_bucket_mb")]
    pub bucket_mb: f64,
}

impl GrpoConfig {
    /// [`GrpoConfig::bucket_mb`] in bytes (0 for a non-positive size, which
    /// [`GrpoConfig::validate`] refuses).
    pub fn bucket_bytes(&self) -> usize {
        (self.bucket_mb * (1u64 << 20) as f64).round().max(0.0) as usize
    }

    /// Learning rate of 0-based GRPO `step` (all its `num_iterations` optimizer steps use it):
    /// linear warmup over `warmup_steps` (`(step+1)/warmup`), then the schedule over the
    /// remaining steps.
    pub fn lr_at(&self, step: usize) -> f64 {
        let base = self.learning_rate;
        if step < self.warmup_steps {
            return base * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        match self.lr_schedule {
            LrSchedule::Constant => base,
            LrSchedule::Linear => base * (1.0 - progress),
            LrSchedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }

    /// The AdamW settings. GRPO passes [`GrpoConfig::lr_at`] to each optimizer step, so the
    /// optimizer's own schedule is left constant.
    pub fn optim_config(&self) -> model::optim::OptimConfig {
        model::optim::OptimConfig {
            lr: self.learning_rate as f32,
            beta1: self.adam_beta1 as f32,
            beta2: self.adam_beta2 as f32,
            eps: self.adam_epsilon as f32,
            weight_decay: self.weight_decay as f32,
            warmup_steps: 0,
            schedule: model::optim::Schedule::Constant,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm as f32),
        }
    }

    /// Reads `path` (optional), applies `--key value` overrides, and validates.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut table = read_table(path)?;
        apply_overrides(&mut table, overrides)?;
        let cfg: GrpoConfig = from_table(table)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn epsilon_high(&self) -> f64 {
        self.epsilon_high.unwrap_or(self.epsilon)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.per_step_problems == 0 {
            return bad("per_step_problems must be > 0".into());
        }
        if self.num_generations < 2 {
            return bad(format!(
                "num_generations = {} must be >= 2 (advantages need a group std)",
                self.num_generations
            ));
        }
        if !(self.epsilon >= 0.0 && self.epsilon_high() >= 0.0) {
            return bad("epsilon and epsilon_high must be >= 0".into());
        }
        if self.beta.is_nan() || self.beta < 0.0 {
            return bad(format!("beta = {} must be >= 0", self.beta));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature = {} must be > 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p = {} must be in (0, 1]", self.top_p));
        }
        if !(self.learning_rate >= 0.0 && self.learning_rate.is_finite()) {
            return bad(format!(
                "learning_rate = {} must be >= 0",
                self.learning_rate
            ));
        }
        if self.max_completion_length == 0 || self.max_prompt_length == 0 {
            return bad("max_prompt_length and max_completion_length must be > 0".into());
        }
        if self.zero1 && self.overlap_grad_sync == Some(true) {
            return bad(
                "overlap_grad_sync = true with zero1: ZeRO-1 reduce-scatters the \
                 gradients inside its optimizer step, after the backward (drop one of them)"
                    .into(),
            );
        }
        if !(self.bucket_mb.is_finite() && self.bucket_bytes() >= 4) {
            return bad(format!(
                "bucket_mb = {} must be > 0 (at least 4 bytes, one f32 gradient)",
                self.bucket_mb
            ));
        }
        if self.num_iterations == 0 || self.micro_batch == 0 {
            return bad("num_iterations and micro_batch must be > 0".into());
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm < 0.0 {
            return bad(format!(
                "max_grad_norm = {} must be >= 0",
                self.max_grad_norm
            ));
        }
        Ok(())
    }

    /// The loss settings `grpo::grpo_loss` takes.
    pub fn loss_config(&self) -> LossConfig {
        LossConfig {
            loss_type: self.loss_type,
            beta: self.beta,
            epsilon: self.epsilon,
            epsilon_high: self.epsilon_high(),
            max_completion_length: self.max_completion_length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        steps: u32,
        lr: f64,
        model: String,
        #[serde(default)]
        flag: bool,
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overrides_beat_file_values_and_are_typed() {
        let mut t: toml::Table = "steps = 3\nlr = 0.1\nmodel = \"a\"".parse().unwrap();
        apply_overrides(
            &mut t,
            &strings(&["--steps", "7", "--model=./m dir", "--flag", "true"]),
        )
        .unwrap();
        let d: Demo = from_table(t).unwrap();
        assert_eq!(
            (d.steps, d.lr, d.model.as_str(), d.flag),
            (7, 0.1, "./m dir", true)
        );
    }

    #[test]
    fn unknown_key_and_wrong_type_are_errors_naming_the_key() {
        let mut t: toml::Table = "steps = 3\nlr = 0.1\nmodel = \"a\"".parse().unwrap();
        apply_overrides(&mut t, &strings(&["--stepz", "1"])).unwrap();
        let e = from_table::<Demo>(t).unwrap_err().to_string();
        assert!(e.contains("stepz"), "{e}");
        let mut t: toml::Table = "steps = 3\nlr = 0.1\nmodel = \"a\"".parse().unwrap();
        apply_overrides(&mut t, &strings(&["--steps", "many"])).unwrap();
        let e = from_table::<Demo>(t).unwrap_err().to_string();
        assert!(e.contains("steps") || e.contains("invalid type"), "{e}");
        assert!(apply_overrides(&mut toml::Table::new(), &strings(&["--steps"])).is_err());
        assert!(apply_overrides(&mut toml::Table::new(), &strings(&["steps", "1"])).is_err());
    }

    #[test]
    fn grpo_config_defaults_overrides_and_validation() {
        let mut t: toml::Table = "model = \"m\"\ndata_dir = \"d\"\nbeta = 0.04"
            .parse()
            .unwrap();
        apply_overrides(
            &mut t,
            &strings(&["--loss-type", "dr_grpo", "--epsilon_high", "0.28"]),
        )
        .unwrap();
        let c: GrpoConfig = from_table(t).unwrap();
        c.validate().unwrap();
        assert_eq!(
            (c.num_generations, c.per_step_problems, c.beta),
            (16, 32, 0.04)
        );
        assert_eq!(c.loss_type, LossType::DrGrpo);
        assert_eq!((c.epsilon, c.epsilon_high()), (0.2, 0.28));
        assert_eq!(
            c.loss_config().max_completion_length,
            c.max_completion_length
        );
        let mut t: toml::Table = "model = \"m\"\ndata_dir = \"d\"".parse().unwrap();
        apply_overrides(&mut t, &strings(&["--num_generations", "1"])).unwrap();
        let e = from_table::<GrpoConfig>(t)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("num_generations"), "{e}");
        let mut t: toml::Table = "model = \"m\"\ndata_dir = \"d\"".parse().unwrap();
        apply_overrides(&mut t, &strings(&["--loss_type", "ppo"])).unwrap();
        assert!(from_table::<GrpoConfig>(t).is_err());
    }

    #[test]
    fn bucket_mb_defaults_to_ddp_size_and_must_hold_an_f32() {
        let base = || {
            let mut t = toml::Table::new();
            for (k, v) in [("model", "m"), ("data_dir", "d"), ("output_dir", "o")] {
                t.insert(k.into(), v.into());
            }
            t
        };
        let c: GrpoConfig = from_table(base()).unwrap();
        assert_eq!(c.bucket_bytes(), crate::dp::DEFAULT_BUCKET_BYTES);
        let mut t = base();
        apply_overrides(&mut t, &strings(&["--bucket_mb", "0.5"])).unwrap();
        let c: GrpoConfig = from_table(t).unwrap();
        assert_eq!(c.bucket_bytes(), 1 << 19);
        c.validate().unwrap();
        for bad in ["0", "-2", "1e-9", "inf"] {
            let mut t = base();
            apply_overrides(&mut t, &strings(&["--bucket_mb", bad])).unwrap();
            let c: GrpoConfig = from_table(t).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("bucket_mb"), "{bad}: {e}");
        }
    }
}
