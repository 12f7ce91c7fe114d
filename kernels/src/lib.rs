//! Hand-written CUDA kernels for swerl: one `.cu` file per op plus its launcher, compiled at run
//! time by NVRTC (feature `cuda`), PTX cached on disk. bf16 storage, f32 accumulation.
//!
//! Without the `cuda` feature the crate still exposes the kernel sources and their list
//! ([`registry::KERNELS`]), the host-side RoPE tables and the `ptxas` report reader, which the CI
//! resource check and the CUDA backend share.

pub mod cache;
pub mod error;
pub mod ptxas;
pub mod registry;
pub mod rope_tables;

pub use error::{KernelError, Result};
pub use registry::{KernelSource, KERNELS};

#[cfg(feature = "cuda")]
pub mod compile;
