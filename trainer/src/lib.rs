//! swerl's trainer crate: the SWE-RL reward, prompts, GRPO and SFT, checkpoints, metrics.
//! The `swerl` binary (src/main.rs + src/cli/) is a thin layer over this library.

pub mod config;
pub mod dp;
pub mod grpo;
pub mod plan;
pub mod plot;
pub mod prompt;
pub mod quickstart;
pub mod reward;
pub mod sft;
pub mod train;
