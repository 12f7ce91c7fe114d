//! Metrics as JSON lines (one object per optimizer step), flushed as they are written so a
//! crashed run keeps its history. Layout (v1), one object per line:
//! `{"step": 1-based optimizer step, "loss": mean loss over the step's target tokens,
//!   "lr": learning rate used, "grad_norm": global L2 norm before clipping,
//!   "tokens": non-padding tokens, "target_tokens": tokens in the loss,
//!   "seconds": step wall time, "tokens_per_s": tokens / seconds, "version": 1}`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::{io_err, Result};
use super::trainer::StepStats;

pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsWriter {
    /// Creates (truncates) `path`, making its folder if needed.
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let f = File::create(path).map_err(io_err(path))?;
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
        })
    }

    pub fn write(&mut self, s: &StepStats) -> Result<()> {
        let line = serde_json::json!({
            "step": s.step,
            "loss": s.loss,
            "lr": s.lr,
            "grad_norm": s.grad_norm,
            "tokens": s.tokens,
            "target_tokens": s.target_tokens,
            "seconds": s.seconds,
            "tokens_per_s": s.tokens_per_s,
            "version": 1,
        });
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(io_err(&self.path))
    }
}
