//! The training instance the miner produces and the trainer reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How the unit of change was recovered from history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// `Merge pull request #N from owner/branch`: base = merge-base(first parent, second parent).
    Merge,
    /// `Title (#N)` on the first-parent line: base = the first parent.
    Squash,
    /// Any other non-merge commit (`--all-commits`).
    Commit,
    /// Imported from a SWE-bench JSONL file.
    Swebench,
}

/// A file added to the context although the PR did not modify it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelevantFile {
    pub path: String,
    /// `co-change` (changed together with a modified file earlier in history) or `import`
    /// (same directory, referenced by or referencing a modified file).
    pub method: String,
    pub score: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub files_changed: usize,
    pub code_files: usize,
    pub test_files: usize,
    pub lines_added: usize,
    pub lines_removed: usize,
    pub renames: usize,
    /// Changes left out of the patches because they cannot be text hunks.
    pub skipped_binary: usize,
    pub skipped_symlink: usize,
    pub skipped_submodule: usize,
    pub commits: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub repo: String,
    pub pr_number: Option<u64>,
    pub kind: UnitKind,
    pub base_commit: String,
    /// The merge commit (or the squash/plain commit itself).
    pub merge_commit: String,
    /// The last commit of the PR branch (= `merge_commit` unless `kind` is `merge`).
    pub head_commit: String,
    /// Intermediate commits, oldest first.
    pub commits: Vec<String>,
    /// RFC 3339 UTC time of the merge (committer time).
    pub created_at: String,
    pub author: String,
    pub title: String,
    pub body: String,
    pub problem_statement: String,
    pub hints: String,
    pub linked_issues: Vec<u64>,
    /// Path → content at `base_commit`: every modified non-test file plus the relevant files.
    pub code_context: BTreeMap<String, String>,
    /// Path → content after the change, for every non-test file that exists afterwards.
    pub oracle_new_content: BTreeMap<String, String>,
    /// Unified diff of the non-test files (`git apply`-able at `base_commit`).
    pub oracle_patch: String,
    /// Unified diff of the test files (SWE-bench's path rule).
    pub test_patch: String,
    pub relevant_files: Vec<RelevantFile>,
    pub stats: Stats,
}

/// Seconds since the epoch → `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` → seconds since the epoch (the GH Archive timestamp format).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        for t in [0, 1_700_000_000, 951_782_400, 1_759_795_200, -86_400] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
    }
}
