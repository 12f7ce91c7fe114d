//! swerl's trainer crate: the SWE-RL reward, prompts, GRPO and SFT, checkpoints, metrics.
//! The `swerl` binary (src/main.rs + src/cli/) is a thin layer over this library.

pub mod reward;
pub mod grpo;
pub mod prompt;
pub mod config;
pub mod train;
pub mod plan;
pub mod sft;
pub mod plot;
pub mod quickstart;
pub mod dp;
