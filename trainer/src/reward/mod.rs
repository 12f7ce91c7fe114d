//! The SWE-RL reward, identical in value to the paper's Python implementation: a faithful
//! port of CPython's `difflib.SequenceMatcher`, `unified_diff`, the answer parser and applier.

pub mod cases;
pub mod difflib;
pub mod pystr;
pub mod score;
pub mod search_replace;
mod suffix_automaton;
pub mod unified_diff;

pub use cases::{CaseError, CaseReport, RewardCase};
pub use difflib::{char_ratio, Match, Opcode, SequenceMatcher, Strategy, Tag};
pub use score::{
    calculate_reward, calculate_search_replace_reward, FileSimilarity, Files, RewardOutcome,
};
pub use search_replace::{FileEdits, FormatError, SearchReplace};
