//! The SWE-RL reward: −1 for a malformed answer, else the mean per-file similarity of the
//! predicted patch to the oracle patch.

use std::collections::{BTreeMap, BTreeSet};

use super::difflib::char_ratio;
use super::search_replace::{
    apply_code_change, extract_thought_solution, parse_search_replace, FormatError,
};
use super::unified_diff::normalized_patch;

/// path → file text.
pub type Files = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileSimilarity {
    pub path: String,
    pub pred_change: String,
    pub oracle_change: String,
    pub similarity: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RewardOutcome {
    pub reward: f64,
    pub format_error: Option<FormatError>,
    /// Sorted by path; empty on a format error.
    pub similarities: Vec<FileSimilarity>,
    /// Present when the completion was split (search/replace form).
    pub thought: Option<String>,
    pub answer: Option<String>,
}

impl RewardOutcome {
    fn format_error(e: FormatError) -> Self {
        RewardOutcome {
            reward: -1.0,
            format_error: Some(e),
            similarities: Vec::new(),
            thought: None,
            answer: None,
        }
    }
}

/// Non-empty normalised patches of the files in `new_content`.
fn patches(code_context: &Files, new_content: &Files) -> BTreeMap<String, String> {
    new_content
        .iter()
        .filter_map(|(path, new)| {
            let old = code_context.get(path).map_or("", String::as_str);
            let patch = normalized_patch(old, new);
            (!patch.is_empty()).then(|| (path.clone(), patch))
        })
        .collect()
}

/// The reference's `calculate_reward`: compare predicted and oracle new contents of files.
/// Each file in either patch scores the character-level `SequenceMatcher` ratio of its
/// predicted patch to its oracle patch (0 if one side did not change it); the reward is the
/// plain mean, 1.0 when neither side changes anything.
pub fn calculate_reward(
    code_context: &Files,
    oracle_new: &Files,
    pred_new: &Files,
) -> RewardOutcome {
    let oracle = patches(code_context, oracle_new);
    let pred = patches(code_context, pred_new);
    let paths: BTreeSet<&String> = oracle.keys().chain(pred.keys()).collect();
    let similarities: Vec<FileSimilarity> = paths
        .into_iter()
        .map(|path| {
            let p = pred.get(path).map_or("", String::as_str);
            let o = oracle.get(path).map_or("", String::as_str);
            let similarity = if p.is_empty() || o.is_empty() {
                0.0
            } else {
                char_ratio(p, o, false)
            };
            FileSimilarity {
                path: path.clone(),
                pred_change: p.to_string(),
                oracle_change: o.to_string(),
                similarity,
            }
        })
        .collect();
    let reward = if similarities.is_empty() {
        1.0
    } else {
        similarities.iter().map(|s| s.similarity).sum::<f64>() / similarities.len() as f64
    };
    RewardOutcome {
        reward,
        format_error: None,
        similarities,
        thought: None,
        answer: None,
    }
}

/// The reference's `calculate_search_replace_reward`: parse the completion's
/// `<think>`/`<solution>` and SEARCH/REPLACE blocks, apply them, and score the result.
pub fn calculate_search_replace_reward(
    code_context: &Files,
    oracle_new: &Files,
    output: &str,
) -> RewardOutcome {
    let (thought, answer) = match extract_thought_solution(output) {
        Ok(x) => x,
        Err(e) => return RewardOutcome::format_error(e),
    };
    let edits = parse_search_replace(answer);
    if edits.is_empty() {
        return RewardOutcome::format_error(FormatError::NoEditBlocks);
    }
    let pred_new = match apply_code_change(code_context, &edits) {
        Ok(x) => x,
        Err(e) => return RewardOutcome::format_error(e),
    };
    let mut outcome = calculate_reward(code_context, oracle_new, &pred_new);
    outcome.thought = Some(thought.to_string());
    outcome.answer = Some(answer.to_string());
    outcome
}
