//! One reward case as the `swerl reward` JSONL files hold it, and its JSON report.

use serde::{Deserialize, Serialize};

use super::score::{calculate_reward, calculate_search_replace_reward, Files, RewardOutcome};

/// A problem plus either a raw completion (`output`, parsed as SEARCH/REPLACE edits) or the
/// predicted new file contents (`pred_new_content`, the reference's general form).
#[derive(Debug, Clone, Deserialize)]
pub struct RewardCase {
    #[serde(default)]
    pub instance_id: Option<String>,
    pub code_context: Files,
    pub oracle_new_content: Files,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub pred_new_content: Option<Files>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("case has neither `output` nor `pred_new_content`")]
    NoPrediction,
    #[error("case has both `output` and `pred_new_content`; give one")]
    TwoPredictions,
}

impl RewardCase {
    pub fn score(&self) -> Result<RewardOutcome, CaseError> {
        match (&self.output, &self.pred_new_content) {
            (Some(out), None) => Ok(calculate_search_replace_reward(
                &self.code_context,
                &self.oracle_new_content,
                out,
            )),
            (None, Some(pred)) => Ok(calculate_reward(
                &self.code_context,
                &self.oracle_new_content,
                pred,
            )),
            (None, None) => Err(CaseError::NoPrediction),
            (Some(_), Some(_)) => Err(CaseError::TwoPredictions),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport<'a> {
    pub path: &'a str,
    pub similarity: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pred_change: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle_change: Option<&'a str>,
}

/// The JSON line `swerl reward` prints for a case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<&'a str>,
    pub reward: f64,
    /// The reference's message, or null.
    pub format_error: Option<String>,
    /// A stable name for the error kind, or null.
    pub format_error_kind: Option<&'static str>,
    pub similarities: Vec<FileReport<'a>>,
}

impl<'a> CaseReport<'a> {
    pub fn new(instance_id: Option<&'a str>, o: &'a RewardOutcome, with_patches: bool) -> Self {
        CaseReport {
            instance_id,
            reward: o.reward,
            format_error: o.format_error.as_ref().map(|e| e.to_string()),
            format_error_kind: o.format_error.as_ref().map(|e| e.kind()),
            similarities: o
                .similarities
                .iter()
                .map(|s| FileReport {
                    path: &s.path,
                    similarity: s.similarity,
                    pred_change: with_patches.then_some(s.pred_change.as_str()),
                    oracle_change: with_patches.then_some(s.oracle_change.as_str()),
                })
                .collect(),
        }
    }
}
