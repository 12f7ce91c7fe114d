//! Checkpoints: `checkpoint-NNNNNN/` holding a Hugging Face model folder (config.json,
//! model.safetensors, the tokenizer files) plus `optimizer.safetensors` (AdamW moments) and
//! `trainer_state.json` (format version, step, optimizer step, RNG state, data cursor, config).
//! Written into a hidden temporary folder, every file fsynced, then renamed into place, so a
//! crash leaves either the old checkpoint or the new one, never half of one.

use std::fs;
use std::path::{Path, PathBuf};

use model::optim::AdamW;
use model::safetensors_io::{self, write_atomic};
use model::{Llama, LlamaConfig};
use runtime::DType;
use serde::{Deserialize, Serialize};

use super::{io_err, Result, TrainError};
use crate::config::GrpoConfig;

pub const STATE_FORMAT: &str = "swerl-grpo-checkpoint";
pub const STATE_VERSION: u32 = 1;
pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Tokenizer and generation files copied from the source model folder when present.
pub const MODEL_SIDE_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub format: String,
    pub version: u32,
    /// GRPO steps completed.
    pub step: usize,
    /// Optimizer steps taken (step × num_iterations).
    pub optimizer_step: u64,
    pub rng: [u64; 4],
    /// The task's data position (opaque to the loop).
    pub cursor: serde_json::Value,
    pub config: GrpoConfig,
}

impl TrainerState {
    /// The state after GRPO step `step` (`optimizer_step` AdamW steps in).
    pub fn new(
        cfg: &GrpoConfig,
        step: usize,
        optimizer_step: u64,
        rng: [u64; 4],
        cursor: serde_json::Value,
    ) -> Self {
        TrainerState {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            step,
            optimizer_step,
            rng,
            cursor,
            config: cfg.clone(),
        }
    }
}

/// Writes `m` as a Hugging Face folder into `dir` (created if needed), F32 weights, copying
/// the tokenizer and generation files found in `side_files_from`.
pub fn save_hf_folder(m: &Llama, dir: &Path, side_files_from: Option<&Path>) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    write_hf_config(&m.config, dir)?;
    safetensors_io::save(
        &dir.join("model.safetensors"),
        &m.params.named(&m.config),
        DType::F32,
    )?;
    copy_side_files(dir, side_files_from)
}

/// `config.json` of an F32 model folder.
pub fn write_hf_config(config: &LlamaConfig, dir: &Path) -> Result<()> {
    let cfg = serde_json::to_vec_pretty(&config.to_json(DType::F32))
        .map_err(|e| TrainError::Invalid(format!("config.json: {e}")))?;
    write_atomic(&dir.join("config.json"), &cfg)?;
    Ok(())
}

/// Copies the tokenizer and generation files found in `side_files_from` into `dir`.
pub fn copy_side_files(dir: &Path, side_files_from: Option<&Path>) -> Result<()> {
    if let Some(src) = side_files_from {
        for name in MODEL_SIDE_FILES {
            let from = src.join(name);
            if from.is_file() {
                let bytes = fs::read(&from).map_err(io_err(&from))?;
                write_atomic(&dir.join(name), &bytes)?;
            }
        }
    }
    Ok(())
}

pub fn checkpoint_dir(output_dir: &Path, step: usize) -> PathBuf {
    output_dir.join(format!("checkpoint-{step:06}"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Writes the checkpoint after GRPO step `step` of a trainer: model `m`, optimizer `opt`
/// (full, not sharded), and the state to resume from (`rng`, the task's `cursor`, `cfg`).
pub fn save_trainer(
    cfg: &GrpoConfig,
    step: usize,
    m: &Llama,
    opt: &AdamW,
    rng: [u64; 4],
    cursor: serde_json::Value,
    side_files_from: Option<&Path>,
) -> Result<PathBuf> {
    let state = TrainerState::new(cfg, step, opt.step, rng, cursor);
    let write_opt = |p: &Path| Ok(opt.save_state(&m.config, p)?);
    save(&cfg.output_dir, m, side_files_from, &write_opt, &state)
}

/// Writes a checkpoint atomically: everything into `.checkpoint-N.tmp`, then one rename.
pub fn save(
    output_dir: &Path,
    m: &Llama,
    side_files_from: Option<&Path>,
    write_optimizer: &dyn Fn(&Path) -> Result<()>,
    state: &TrainerState,
) -> Result<PathBuf> {
    let tmp = begin(output_dir, state.step)?;
    save_hf_folder(m, &tmp, side_files_from)?;
    write_optimizer(&tmp.join(OPTIMIZER_FILE))?;
    finish(output_dir, &tmp, state)
}

/// The empty hidden folder a checkpoint of `step` is written into before [`finish`] renames
/// it into place (for writers that fill it themselves, e.g. streaming tensor-parallel saves).
pub fn begin(output_dir: &Path, step: usize) -> Result<PathBuf> {
    fs::create_dir_all(output_dir).map_err(io_err(output_dir))?;
    let tmp = output_dir.join(format!(".{}.tmp", dir_name(output_dir, step)));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    Ok(tmp)
}

fn dir_name(output_dir: &Path, step: usize) -> String {
    let fin = checkpoint_dir(output_dir, step);
    let name = fin.file_name().and_then(|n| n.to_str());
    name.unwrap_or("checkpoint").to_string()
}

/// Writes `state` into the folder `tmp` from [`begin`], then renames it to
/// `checkpoint-<step>`.
pub fn finish(output_dir: &Path, tmp: &Path, state: &TrainerState) -> Result<PathBuf> {
    let fin = checkpoint_dir(output_dir, state.step);
    let name = dir_name(output_dir, state.step);
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| TrainError::Checkpoint(format!("state: {e}")))?;
    write_atomic(&tmp.join(STATE_FILE), &json)?;
    sync_dir(tmp)?;
    if fin.exists() {
        // Re-saving a step (a rerun): move the old copy aside first, as rename cannot
        // replace a non-empty folder.
        let old = output_dir.join(format!(".{name}.old"));
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io_err(&old))?;
        }
        fs::rename(&fin, &old).map_err(io_err(&fin))?;
        fs::rename(tmp, &fin).map_err(io_err(&fin))?;
        fs::remove_dir_all(&old).map_err(io_err(&old))?;
    } else {
        fs::rename(tmp, &fin).map_err(io_err(&fin))?;
    }
    sync_dir(output_dir)?;
    Ok(fin)
}

/// Reads and checks `trainer_state.json`.
pub fn load_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let state: TrainerState = serde_json::from_slice(&bytes)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
    if state.format != STATE_FORMAT || state.version != STATE_VERSION {
        return Err(TrainError::Checkpoint(format!(
            "{}: format {:?} version {} (expected {STATE_FORMAT:?} version {STATE_VERSION})",
            path.display(),
            state.format,
            state.version
        )));
    }
    Ok(state)
}

/// The checkpoint with the highest step in `output_dir`, if any.
pub fn latest(output_dir: &Path) -> Result<Option<PathBuf>> {
    if !output_dir.exists() {
        return Ok(None);
    }
    let mut best: Option<(usize, PathBuf)> = None;
    for e in fs::read_dir(output_dir).map_err(io_err(output_dir))? {
        let e = e.map_err(io_err(output_dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("checkpoint-")
            .and_then(|s| s.parse::<usize>().ok())
        {
            if e.path().join(STATE_FILE).is_file() && best.as_ref().is_none_or(|(b, _)| n > *b) {
                best = Some((n, e.path()));
            }
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// Loads the state at `dir` for a resume and checks `cfg` against the config it was saved
/// with: only steps, save_steps, output_dir, zero1, overlap_grad_sync and bucket_mb (where the
/// optimizer state lives and when and in what pieces gradients are summed, not the
/// trajectory) may change.
pub fn load_state_for(dir: &Path, cfg: &GrpoConfig) -> Result<TrainerState> {
    let state = load_state(dir)?;
    let mut saved = state.config.clone();
    saved.steps = cfg.steps;
    saved.save_steps = cfg.save_steps;
    saved.output_dir = cfg.output_dir.clone();
    saved.zero1 = cfg.zero1;
    saved.overlap_grad_sync = cfg.overlap_grad_sync;
    saved.bucket_mb = cfg.bucket_mb;
    if saved != *cfg {
        return Err(TrainError::Checkpoint(format!(
            "{}: the config differs from the checkpoint's in more than steps/save_steps/output_dir/zero1/overlap_grad_sync/bucket_mb",
            dir.display()
        )));
    }
    Ok(state)
}
