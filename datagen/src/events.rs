//! GH Archive enrichment: hourly `.json.gz` dumps (one JSON event per line) → PR
//! title/body, issue text and pre-PR issue comments (SWE-bench's `hints_text`).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::instance::{parse_rfc3339, Instance};
use crate::{refs, Error, Result};

/// From this moment GitHub's event payloads were trimmed (no PR title/body).
pub const TRIM_CUTOFF: &str = "2025-10-07T00:00:00Z";

#[derive(Clone, Debug, Default)]
pub struct PrData {
    pub title: Option<String>,
    pub body: Option<String>,
    pub merged: bool,
    pub review_comments: usize,
}

#[derive(Clone, Debug, Default)]
pub struct IssueData {
    pub title: Option<String>,
    pub body: Option<String>,
    /// (created_at seconds, body)
    pub comments: Vec<(i64, String)>,
}

#[derive(Default)]
pub struct RepoEvents {
    pub prs: HashMap<u64, PrData>,
    pub issues: HashMap<u64, IssueData>,
}

#[derive(Default)]
pub struct Events {
    pub repos: HashMap<String, RepoEvents>,
    pub read: u64,
    pub trimmed: u64,
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

impl Events {
    /// Reads every `*.json.gz` (and plain `*.json`) file in `dir`, keeping events of `only`
    /// repositories when given. Unparseable lines are errors naming file and line.
    pub fn load(dir: &Path, only: Option<&HashSet<String>>) -> Result<Events> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(Error::io("read events directory", dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                n.ends_with(".json.gz") || n.ends_with(".json")
            })
            .collect();
        files.sort();
        let mut ev = Events::default();
        let cutoff = parse_rfc3339(TRIM_CUTOFF).expect("valid constant");
        for f in files {
            let file = std::fs::File::open(&f).map_err(Error::io("open events file", &f))?;
            let reader: Box<dyn BufRead> = if f.extension().is_some_and(|e| e == "gz") {
                Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
            } else {
                Box::new(BufReader::new(file))
            };
            for (n, line) in reader.lines().enumerate() {
                let line = line.map_err(Error::io("read events file", &f))?;
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(&line).map_err(|e| Error::Parse {
                    path: f.clone(),
                    line: n + 1,
                    msg: e.to_string(),
                })?;
                ev.add(&v, cutoff, only);
            }
        }
        Ok(ev)
    }

    fn add(&mut self, v: &Value, cutoff: i64, only: Option<&HashSet<String>>) {
        let Some(repo) = v.pointer("/repo/name").and_then(Value::as_str) else {
            return;
        };
        if only.is_some_and(|o| !o.contains(repo)) {
            return;
        }
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let at = v
            .get("created_at")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or(0);
        let p = v.get("payload").cloned().unwrap_or(Value::Null);
        let action = p.get("action").and_then(Value::as_str).unwrap_or("");
        self.read += 1;
        let re = self.repos.entry(repo.to_string()).or_default();
        match kind {
            "PullRequestEvent" => {
                let pr = p.get("pull_request").cloned().unwrap_or(Value::Null);
                let Some(num) = p
                    .get("number")
                    .or_else(|| pr.get("number"))
                    .and_then(Value::as_u64)
                else {
                    return;
                };
                let trimmed = pr.get("title").is_none() && pr.get("body").is_none();
                if trimmed && at >= cutoff {
                    self.trimmed += 1;
                }
                let merged = pr.get("merged").and_then(Value::as_bool).unwrap_or(false)
                    || pr.get("merged_at").is_some_and(|m| !m.is_null());
                if action != "closed" || (!merged && !trimmed) {
                    return;
                }
                let d = re.prs.entry(num).or_default();
                d.merged |= merged;
                d.title = s(&pr, "title").or(d.title.take());
                d.body = s(&pr, "body").or(d.body.take());
            }
            "IssuesEvent" => {
                let issue = p.get("issue").cloned().unwrap_or(Value::Null);
                let Some(num) = issue.get("number").and_then(Value::as_u64) else {
                    return;
                };
                let d = re.issues.entry(num).or_default();
                d.title = s(&issue, "title").or(d.title.take());
                d.body = s(&issue, "body").or(d.body.take());
            }
            "IssueCommentEvent" => {
                let issue = p.get("issue").cloned().unwrap_or(Value::Null);
                let Some(num) = issue.get("number").and_then(Value::as_u64) else {
                    return;
                };
                let Some(body) = p.pointer("/comment/body").and_then(Value::as_str) else {
                    return;
                };
                let cat = p
                    .pointer("/comment/created_at")
                    .and_then(Value::as_str)
                    .and_then(parse_rfc3339)
                    .unwrap_or(at);
                let d = re.issues.entry(num).or_default();
                if d.title.is_none() {
                    d.title = s(&issue, "title");
                    d.body = s(&issue, "body");
                }
                d.comments.push((cat, body.to_string()));
            }
            "PullRequestReviewCommentEvent" => {
                let num = p
                    .get("number")
                    .or_else(|| p.pointer("/pull_request/number"))
                    .and_then(Value::as_u64);
                if let Some(num) = num {
                    re.prs.entry(num).or_default().review_comments += 1;
                }
            }
            _ => self.read -= 1,
        }
    }

    /// Fills PR text, linked issues, problem statement and hints from the events. Returns
    /// whether the PR itself was found.
    pub fn enrich(&self, inst: &mut Instance, first_commit_at: i64, commit_text: &str) -> bool {
        let Some(re) = self.repos.get(&inst.repo) else {
            return false;
        };
        let pr = inst.pr_number.and_then(|n| re.prs.get(&n));
        if let Some(pr) = pr {
            if let Some(t) = &pr.title {
                inst.title = t.clone();
            }
            if let Some(b) = &pr.body {
                inst.body = b.clone();
            }
        }
        inst.linked_issues =
            refs::linked_issues(&format!("{}\n{}\n{}", inst.title, inst.body, commit_text));
        let mut statements = Vec::new();
        let mut hints = Vec::new();
        for n in &inst.linked_issues {
            let Some(issue) = re.issues.get(n) else {
                continue;
            };
            if issue.title.is_some() || issue.body.is_some() {
                statements.push(
                    format!(
                        "{}\n{}",
                        issue.title.as_deref().unwrap_or(""),
                        issue.body.as_deref().unwrap_or("")
                    )
                    .trim()
                    .to_string(),
                );
            }
            let mut comments: Vec<&(i64, String)> = issue
                .comments
                .iter()
                .filter(|(t, _)| *t < first_commit_at)
                .collect();
            comments.sort_by_key(|c| c.0);
            hints.extend(comments.into_iter().map(|c| c.1.clone()));
        }
        if !statements.is_empty() {
            inst.problem_statement = statements.join("\n\n");
        } else {
            inst.problem_statement = format!("{}\n\n{}", inst.title, inst.body)
                .trim()
                .to_string();
        }
        inst.hints = hints.join("\n");
        pr.is_some()
    }
}
