//! The runtime's error type: every message names the op and the offending shapes/dtypes.

use crate::{DType, Device};

/// Errors returned by tensor constructors and ops.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shapes that do not fit together; `msg` says which dims and what was expected.
    #[error("{op}: shape mismatch: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A dtype the op does not accept (or inputs whose dtypes disagree).
    #[error("{op}: unsupported dtype {got:?} ({msg})")]
    DType {
        op: &'static str,
        got: DType,
        msg: String,
    },
    /// Tensors on different devices, or a device without a backend in this build.
    #[error("{op}: device error: {msg}")]
    Device { op: &'static str, msg: String },
    /// Host access to a tensor that does not live on the CPU.
    #[error("{op}: tensor is on {device:?}, host access needs Device::Cpu")]
    NotOnHost { op: &'static str, device: Device },
    /// Writing to a tensor whose storage is shared with another tensor (a view or a clone).
    #[error("{op}: output tensor of shape {shape:?} shares its storage with another tensor; writes need unique storage")]
    SharedStorage { op: &'static str, shape: Vec<usize> },
    /// Any other invalid argument (index out of range, bad hyper-parameter, ...).
    #[error("{op}: invalid argument: {msg}")]
    Invalid { op: &'static str, msg: String },
}

/// `Result` with the runtime's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op,
        msg: msg.into(),
    })
}

pub(crate) fn invalid<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid {
        op,
        msg: msg.into(),
    })
}
