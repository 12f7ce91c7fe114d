//! Llama-3 for swerl: Hugging Face folder loading/saving (config, safetensors, tokenizer, chat
//! template), forward and hand-written backward layer by layer over preallocated activation
//! buffers, KV-cache generation, and log-probs — all written once against `runtime::ops`.

pub mod activations;
pub mod config;
pub mod error;
pub mod folder;
pub mod generate;
pub mod kv_cache;
pub mod layers;
pub mod model;
pub mod optim;
pub mod params;
pub mod safetensors_io;
pub mod tokenizer;
pub mod tp;

pub use activations::{Activations, GradBuffers};
pub use config::LlamaConfig;
pub use error::{ModelError, Result};
pub use generate::{GenerateConfig, InferBuffers};
pub use kv_cache::KvCache;
pub use model::Llama;
pub use params::LlamaParams;
pub use tokenizer::{Message, Tokenizer};
