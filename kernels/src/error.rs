//! Errors of the kernels crate.

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("CUDA library not available: {0}")]
    Unavailable(String),
    #[error("NVRTC failed to compile {kernel}.cu for {arch}: {log}")]
    Compile {
        kernel: String,
        arch: String,
        log: String,
    },
    #[error("no kernel source named {0:?}")]
    UnknownKernel(String),
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    #[error(
        "{op}: launch of {entry} does not match its signature: expected {expected}, got {got}"
    )]
    Signature {
        op: &'static str,
        entry: String,
        expected: String,
        got: String,
    },
    #[error("CUDA driver error in {op}: {msg}")]
    Driver { op: &'static str, msg: String },
    #[error("cuBLASLt error in {op}: {msg}")]
    Blas { op: &'static str, msg: String },
    #[error(
        "device compute capability {major}.{minor} is unsupported (bf16 kernels need 8.0 or newer)"
    )]
    UnsupportedDevice { major: i32, minor: i32 },
}

pub type Result<T> = std::result::Result<T, KernelError>;

/// Shape error helper: `shape("rmsnorm_fwd", format!(..))`.
#[cfg(feature = "cuda")]
pub(crate) fn shape(op: &'static str, msg: impl Into<String>) -> KernelError {
    KernelError::Shape {
        op,
        msg: msg.into(),
    }
}
