//! The model crate's error type: every message names the file, tensor or setting at fault.

use std::path::PathBuf;

/// Errors from loading, saving, tokenizing and running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A config field that is missing or has the wrong type/value.
    #[error("config: {0}")]
    Config(String),
    /// A well-formed config asking for something this implementation does not do.
    #[error("unsupported model config: {0}")]
    Unsupported(String),
    #[error("{file}: not a valid safetensors file: {msg}")]
    Safetensors { file: PathBuf, msg: String },
    #[error("tensor `{name}` not found (looked in {file})")]
    MissingTensor { name: String, file: PathBuf },
    #[error("tensor `{name}` in {file}: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        name: String,
        file: PathBuf,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` in {file}: unsupported dtype {dtype} (need F32, BF16 or F16)")]
    TensorDType {
        name: String,
        file: PathBuf,
        dtype: String,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    /// Bad arguments to a model call (empty batch, token id out of range, ...).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    /// A tensor-parallel layout this model cannot be split into (head counts, sizes).
    #[error("tensor parallelism: {0}")]
    TensorParallel(String),
    #[error(transparent)]
    Comm(#[from] runtime::comm::CommError),
}

pub type Result<T> = std::result::Result<T, ModelError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ModelError {
    let path = path.into();
    move |source| ModelError::Io { path, source }
}
