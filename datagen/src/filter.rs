//! Filter settings and the counted report every run ends with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// SWE-bench's 12 repositories: their histories must not leak into training data.
pub const SWE_BENCH_REPOS: [&str; 12] = [
    "astropy/astropy",
    "django/django",
    "matplotlib/matplotlib",
    "mwaskom/seaborn",
    "pallets/flask",
    "psf/requests",
    "pydata/xarray",
    "pylint-dev/pylint",
    "pytest-dev/pytest",
    "scikit-learn/scikit-learn",
    "sphinx-doc/sphinx",
    "sympy/sympy",
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FilterConfig {
    /// Changed files (code + tests + noise) above which a unit is dropped.
    pub max_files: usize,
    /// Added + removed lines above which a unit is dropped.
    pub max_changed_lines: usize,
    /// Any changed or context file above this many bytes drops the unit.
    pub max_file_bytes: usize,
    /// Repositories never mined, matched on `owner/name` or on `name` alone (forks and
    /// mirrors of a benchmark repository are excluded too).
    pub decontaminate: Vec<String>,
    /// Relevant-unmodified files added to the context.
    pub relevant_k: usize,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            max_files: 50,
            max_changed_lines: 2000,
            max_file_bytes: 1 << 20,
            decontaminate: SWE_BENCH_REPOS.iter().map(|s| s.to_string()).collect(),
            relevant_k: 3,
        }
    }
}

impl FilterConfig {
    pub fn is_contaminated(&self, repo: &str) -> bool {
        let lower = repo.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        self.decontaminate.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            d == lower || d.rsplit('/').next() == Some(name)
        })
    }
}

/// Why a unit of change was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    Bot,
    Empty,
    NonUtf8,
    TooManyFiles,
    TooManyLines,
    FileTooLarge,
    NoiseOnly,
    Duplicate,
    CorruptObject,
}

impl Reject {
    pub fn name(self) -> &'static str {
        match self {
            Reject::Bot => "bot",
            Reject::Empty => "empty",
            Reject::NonUtf8 => "non_utf8",
            Reject::TooManyFiles => "too_many_files",
            Reject::TooManyLines => "too_many_lines",
            Reject::FileTooLarge => "file_too_large",
            Reject::NoiseOnly => "noise_only",
            Reject::Duplicate => "duplicate",
            Reject::CorruptObject => "corrupt_object",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub repos: usize,
    pub repos_decontaminated: Vec<String>,
    pub repos_empty: Vec<String>,
    pub commits_walked: u64,
    pub units: u64,
    pub kept: u64,
    pub rejected: BTreeMap<String, u64>,
    /// GH Archive events read, and those recorded after 2025-10-07 whose payloads were trimmed.
    pub events_read: u64,
    pub events_trimmed: u64,
    pub prs_enriched: u64,
}

impl Report {
    pub fn reject(&mut self, why: Reject) {
        *self.rejected.entry(why.name().to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Report) {
        self.repos += other.repos;
        self.repos_decontaminated
            .extend(other.repos_decontaminated.iter().cloned());
        self.repos_empty.extend(other.repos_empty.iter().cloned());
        self.commits_walked += other.commits_walked;
        self.units += other.units;
        self.kept += other.kept;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        self.events_read += other.events_read;
        self.events_trimmed += other.events_trimmed;
        self.prs_enriched += other.prs_enriched;
    }

    /// The human-readable table printed at the end of `swerl mine`.
    pub fn table(&self) -> String {
        let mut s = format!(
            "repos {}  commits walked {}  units {}  kept {}\n",
            self.repos, self.commits_walked, self.units, self.kept
        );
        for (k, v) in &self.rejected {
            s.push_str(&format!("  dropped {k:<16} {v}\n"));
        }
        for r in &self.repos_decontaminated {
            s.push_str(&format!("  repo skipped (decontamination list): {r}\n"));
        }
        for r in &self.repos_empty {
            s.push_str(&format!("  repo skipped (no commits): {r}\n"));
        }
        if self.events_read > 0 {
            s.push_str(&format!(
                "  events read {}  trimmed (after 2025-10-07) {}  PRs enriched {}\n",
                self.events_read, self.events_trimmed, self.prs_enriched
            ));
        }
        s
    }
}
