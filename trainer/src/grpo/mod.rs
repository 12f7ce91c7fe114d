//! GRPO's objective with the names and semantics of Hugging Face TRL's `GRPOTrainer`:
//! group-relative advantages and the clipped, optionally KL-regularised per-token loss with
//! its gradient with respect to the policy log-probabilities.

pub mod advantages;
pub mod loss;

pub use advantages::{compute_advantages, ScaleRewards};
pub use loss::{grpo_loss, LossConfig, LossOutput, LossType, TokenLogps};

/// Inputs that cannot be combined; every variant names the offending sizes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GrpoError {
    #[error("grpo: {what} has {got} values, expected {expected}")]
    Length {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("grpo: {n} rewards cannot be split into groups of {group}")]
    Groups { n: usize, group: usize },
    #[error("grpo: beta = {0} needs reference log-probs")]
    MissingReference(f64),
    #[error("grpo: {0}")]
    Config(String),
    #[error("grpo: unknown {what} {value:?} (expected one of {expected})")]
    Unknown {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
}
