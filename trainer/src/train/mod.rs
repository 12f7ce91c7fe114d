//! The GRPO trainer: SWE-RL prompts, rollouts, the policy-gradient pass, AdamW, the training
//! loop with atomic checkpoints and exact resume, and per-step metrics.

pub mod checkpoint;
pub mod dp_step;
mod iterations;
pub mod metrics;
pub mod oracle;
pub mod policy;
pub mod prompt;
pub mod rollout;
pub mod run;
pub mod run_loop;
pub mod step;
pub mod swe;
pub mod tp_policy;
pub mod tp_run;
pub mod tp_step;
pub mod zero1;

pub use run::{Task, Trainer};
pub use step::{Learner, Reward, Scored, StepSettings};
pub use swe::SweTask;

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::grpo::GrpoError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    #[error(transparent)]
    Grpo(#[from] GrpoError),
    #[error(transparent)]
    Data(#[from] datagen::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Dp(#[from] crate::dp::DpError),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("train: {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, TrainError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
