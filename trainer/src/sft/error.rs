//! Errors of the SFT pipeline; data errors name the file and line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SftError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data line that cannot be used (bad JSON, wrong fields, template failure).
    #[error("{path}:{line}: {msg}")]
    Line {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    /// Bad settings or arguments (empty dataset, zero batch size, ...).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, SftError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SftError {
    let path = path.into();
    move |source| SftError::Io { path, source }
}
