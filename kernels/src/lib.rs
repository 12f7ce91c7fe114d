//! Hand-written CUDA kernels for swerl: one `.cu` file per op plus its launcher, compiled at run
//! time by NVRTC (feature `cuda`), PTX cached on disk. bf16 storage, f32 accumulation.
//!
//! Op names and layouts mirror the runtime's CPU ops (`runtime::ops`), which are the kernels'
//! CPU twins in the GPU tests.
//!
//! Without the `cuda` feature the crate still exposes the kernel sources and their list
//! ([`registry::KERNELS`]) and the `ptxas` report reader, which the CI resource check and the
//! CUDA backend share.

pub mod cache;
pub mod error;
pub mod ptxas;
pub mod registry;
pub mod signature;

pub use error::{KernelError, Result};
pub use registry::{KernelSource, KERNELS};

#[cfg(feature = "cuda")]
pub mod compile;
#[cfg(feature = "cuda")]
pub mod context;

#[cfg(feature = "cuda")]
pub mod adamw;
#[cfg(feature = "cuda")]
pub mod alloc;
#[cfg(feature = "cuda")]
pub mod attention;
#[cfg(feature = "cuda")]
pub mod cast;
#[cfg(feature = "cuda")]
pub mod chunked;
#[cfg(feature = "cuda")]
pub mod elementwise;
#[cfg(feature = "cuda")]
pub mod embedding;
#[cfg(feature = "cuda")]
pub mod gemm;
#[cfg(feature = "cuda")]
pub mod logprobs;
#[cfg(feature = "cuda")]
pub mod reduce;
#[cfg(feature = "cuda")]
pub mod rmsnorm;
#[cfg(feature = "cuda")]
pub mod rope;
#[cfg(feature = "cuda")]
pub mod sampling;
#[cfg(feature = "cuda")]
pub mod swiglu;

#[cfg(feature = "cuda")]
pub use context::{Elem, Gpu};
/// cudarc, re-exported so the CUDA backend shares this crate's version and features.
#[cfg(feature = "cuda")]
pub use cudarc;
