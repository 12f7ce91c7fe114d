//! Writing a Hugging Face model folder that transformers (and [`Llama::load`]) loads back:
//! `model.safetensors`, `config.json`, and the tokenizer files copied from the source folder.

use std::path::Path;

use runtime::DType;

use crate::config::LlamaConfig;
use crate::error::{io_err, ModelError, Result};
use crate::model::Llama;
use crate::safetensors_io::{self, write_atomic};

/// Tokenizer-side files a model folder may carry; copied verbatim when present.
pub const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
];

impl Llama {
    /// Saves the weights (converted to `dtype`) and config into `dir` (created if needed),
    /// copying the tokenizer files from `tokenizer_from` when given. Every file is written
    /// atomically. Tied models store no `lm_head.weight`, as transformers does.
    pub fn save(&self, dir: &Path, dtype: DType, tokenizer_from: Option<&Path>) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let named = self.params.named(&self.config);
        safetensors_io::save(&dir.join("model.safetensors"), &named, dtype)?;
        write_folder_files(&self.config, dir, dtype, tokenizer_from)
    }
}

/// The rest of a Hugging Face folder beside its weights, as [`Llama::save`] writes it:
/// `config.json` (declaring `dtype`) and the tokenizer files found in `tokenizer_from`.
pub(crate) fn write_folder_files(
    config: &LlamaConfig,
    dir: &Path,
    dtype: DType,
    tokenizer_from: Option<&Path>,
) -> Result<()> {
    let cfg = serde_json::to_string_pretty(&config.to_json(dtype))
        .map_err(|e| ModelError::Invalid(format!("{}: config.json: {e}", dir.display())))?;
    write_atomic(&dir.join("config.json"), cfg.as_bytes())?;
    if let Some(src) = tokenizer_from {
        for name in TOKENIZER_FILES {
            let from = src.join(name);
            if from.exists() && src.canonicalize().ok() != dir.canonicalize().ok() {
                let bytes = std::fs::read(&from).map_err(io_err(&from))?;
                write_atomic(&dir.join(name), &bytes)?;
            }
        }
    }
    Ok(())
}
