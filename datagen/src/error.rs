use std::path::PathBuf;

/// Every failure the miner and the dataset reader/writer can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open git repository {path}: {msg}")]
    Open { path: PathBuf, msg: String },
    #[error("{path} is a shallow clone: history before the shallow boundary is missing, so merge bases and co-change history would be wrong; run `git fetch --unshallow` first")]
    Shallow { path: PathBuf },
    #[error("git object {id} ({op}): {msg}")]
    Object {
        id: String,
        op: &'static str,
        msg: String,
    },
    #[error("git {op}: {msg}")]
    Git { op: &'static str, msg: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dataset file {path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("dataset record {index} in {path}: {msg}")]
    Record {
        path: PathBuf,
        index: usize,
        msg: String,
    },
    #[error("{path} line {line}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
