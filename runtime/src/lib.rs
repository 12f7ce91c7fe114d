//! swerl's tensor runtime: a minimal tensor type, the `Backend` trait, a CPU backend, and the op
//! set Llama-3 training/inference needs (explicit forward and backward functions, no autograd).
//!
//! Start at [`Tensor`] (ownership and view rules) and [`ops`] (every op, with its layouts).

pub mod backend;
pub mod comm;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod device;
mod dtype;
mod error;
pub mod ops;
pub mod rng;
pub mod rope;
pub mod sample;
mod storage;
mod tensor;

pub use backend::{AdamWParams, Backend, MatmulParams};
pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use ops::{AttentionParams, CrossEntropyStats};
pub use rng::{fill_normal, fill_uniform, Rng};
pub use rope::{rope_inv_freq, rope_tables, RopeScaling};
pub use sample::{argmax, sample, sample_token, SamplingParams};
pub use storage::{CpuStorage, Storage};
pub use tensor::Tensor;

/// Re-exported so callers name the same `bf16`/`f16` types.
pub use half::{bf16, f16};
