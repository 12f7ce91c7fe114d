//! CUDA device state for the runtime's `cuda` feature: per device one context, one stream, one
//! cuBLASLt handle and one caching allocator (no driver allocation in a step loop that repeats
//! its shapes), opened on first use; and [`CudaStorage`], a tensor's buffer on a device.
//!
//! Kernels and launchers live in the `kernels` crate; this module owns what the runtime needs
//! to hold tensors there. Every failure is a `Result` (`Error::Device` naming the op), and a
//! machine without a driver or NVRTC gets one line saying so instead of a panic.

mod backend;
mod device;
mod loss_optim;
mod seq;
mod storage;
mod util;

pub use backend::CudaBackend;
pub use device::{device, report, CudaDevice};
/// The kernels crate this backend runs on (launchers, cuBLASLt), for benchmarks that call it
/// directly as a ceiling.
pub use kernels;
pub use storage::CudaStorage;

/// The backend for device `ordinal`, after opening it (so a machine without CUDA gets the
/// one-line reason here instead of at the first kernel).
pub fn backend(
    op: &'static str,
    ordinal: usize,
) -> crate::Result<&'static dyn crate::backend::Backend> {
    device(ordinal).map_err(|e| crate::Error::Device {
        op,
        msg: e.to_string(),
    })?;
    Ok(&CudaBackend)
}

/// Maps a kernels-crate error into the runtime's, naming the op.
pub(crate) fn dev_err(op: &'static str) -> impl Fn(kernels::KernelError) -> crate::Error {
    move |e| crate::Error::Device {
        op,
        msg: e.to_string(),
    }
}
