//! Supervised fine-tuning: JSONL examples (prompt/completion or chat messages) tokenised with a
//! loss mask, padded or packed into `[B, T]` batches, and trained with the model crate's AdamW
//! (warmup + cosine or constant LR, global-norm clipping) and gradient accumulation. [`Trainer`] works on tokenised
//! [`Example`]s, so other stages (GRPO warm-up) can feed it their own data:
//!
//! ```text
//! let enc = Encoder::from_dir(model_dir)?;                  // tokenizer + chat template + EOS
//! let examples = load_jsonl(path, &enc)?;                   // or enc.encode(&Record::Chat { .. })
//! let mut tr = Trainer::new(Llama::load(model_dir)?, SftConfig { batch_size: 4, ..Default::default() })?;
//! tr.fit(&examples, |stats| Ok(()))?;                       // or tr.train_step(&batches) yourself
//! tr.into_model().save(out_dir, DType::F32, Some(model_dir))?;
//! ```

pub mod batch;
pub mod data;
mod error;
pub mod metrics;
pub mod trainer;

pub use batch::{make_batches, Batch, Packing};
pub use data::{load_jsonl, Encoder, Example, Record};
pub use error::{Result, SftError};
pub use metrics::MetricsWriter;
pub use trainer::{FitSummary, SftConfig, StepStats, Trainer};
