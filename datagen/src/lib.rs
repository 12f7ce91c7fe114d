//! SWE-RL data: git histories (and GH Archive event dumps) turned into filtered,
//! deduplicated, memory-mapped training instances.

pub mod blobcache;
pub mod bytescan;
pub mod dataset;
pub mod diff;
pub mod error;
pub mod events;
pub mod filter;
pub mod git;
pub mod instance;
pub mod mine;
mod readahead;
pub mod record;
pub mod refs;
pub mod relevant;
pub mod rules;
pub mod shard;
pub mod swebench;
pub mod unit;

pub use dataset::{Dataset, DatasetWriter};
pub use error::{Error, Result};
pub use events::Events;
pub use filter::{FilterConfig, Reject, Report};
pub use instance::{Instance, RelevantFile, Stats, UnitKind};
pub use mine::{MineOptions, Miner};
