//! SWE-bench interchange: export instances under SWE-bench's field names, and import
//! SWE-bench JSONL (reading file contents at `base_commit` from a local clone).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::git::{EntryKind, Repo};
use crate::instance::{Instance, Stats, UnitKind};
use crate::{diff, Error, Result};

/// One JSONL line: SWE-bench's names where they exist (`instance_id`, `patch`,
/// `hints_text`, ...), this crate's extra fields after them.
pub fn to_swebench(i: &Instance) -> Value {
    json!({
        "instance_id": i.id,
        "repo": i.repo,
        "base_commit": i.base_commit,
        "patch": i.oracle_patch,
        "test_patch": i.test_patch,
        "problem_statement": i.problem_statement,
        "hints_text": i.hints,
        "created_at": i.created_at,
        "pull_number": i.pr_number,
        "issue_numbers": i.linked_issues,
        "merge_commit": i.merge_commit,
        "head_commit": i.head_commit,
        "commits": i.commits,
        "kind": i.kind,
        "title": i.title,
        "body": i.body,
        "author": i.author,
        "code_context": i.code_context,
        "oracle_new_content": i.oracle_new_content,
        "relevant_files": i.relevant_files,
        "stats": i.stats,
    })
}

/// Where the clone of `owner/name` lives under `repos`: `owner__name`, `owner/name`, or `name`.
pub fn find_clone(repos: &Path, repo: &str) -> Option<PathBuf> {
    let name = repo.rsplit('/').next().unwrap_or(repo);
    [
        repos.join(repo.replace('/', "__")),
        repos.join(repo),
        repos.join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
}

fn field<'a>(v: &'a Value, key: &str, path: &Path, line: usize) -> Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Parse {
            path: path.to_owned(),
            line,
            msg: format!("missing string field `{key}`"),
        })
}

/// Converts one SWE-bench record, reading every file the gold patch modifies at
/// `base_commit` and applying the patch to get the new contents.
pub fn import_record(v: &Value, repo: &Repo, path: &Path, line: usize) -> Result<Instance> {
    let bad = |msg: String| Error::Parse {
        path: path.to_owned(),
        line,
        msg,
    };
    let id = field(v, "instance_id", path, line)?;
    let repo_name = field(v, "repo", path, line)?;
    let base = field(v, "base_commit", path, line)?;
    let patch = field(v, "patch", path, line)?;
    let test_patch = v.get("test_patch").and_then(Value::as_str).unwrap_or("");
    let problem = v
        .get("problem_statement")
        .and_then(Value::as_str)
        .unwrap_or("");
    let hints = v.get("hints_text").and_then(Value::as_str).unwrap_or("");
    let base_id: gix::hash::ObjectId = base
        .parse()
        .map_err(|e| bad(format!("base_commit {base:?}: {e}")))?;
    let tree = repo.commit(base_id)?.tree;
    let mut code_context = BTreeMap::new();
    let mut oracle_new_content = BTreeMap::new();
    let mut stats = Stats::default();
    for (file, fpatch) in diff::split_files(patch) {
        stats.files_changed += 1;
        stats.code_files += 1;
        let old_path = fpatch
            .lines()
            .next()
            .and_then(|h| h.strip_prefix("diff --git a/"))
            .and_then(|h| h.rsplit_once(" b/"))
            .map(|(a, _)| a)
            .unwrap_or(file);
        let is_new = fpatch.contains("\nnew file mode ") || fpatch.contains("\n--- /dev/null\n");
        let old = if is_new {
            String::new()
        } else {
            let entry = repo
                .entry_at(tree, old_path.as_bytes())?
                .filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Executable))
                .ok_or_else(|| bad(format!("{id}: {old_path} does not exist at {base}")))?;
            let text = String::from_utf8(repo.blob(entry.id)?)
                .map_err(|_| bad(format!("{id}: {old_path} is not UTF-8")))?;
            code_context.insert(old_path.to_string(), text.clone());
            text
        };
        for l in fpatch.lines() {
            stats.lines_added += usize::from(l.starts_with('+') && !l.starts_with("+++"));
            stats.lines_removed += usize::from(l.starts_with('-') && !l.starts_with("---"));
        }
        if !fpatch.contains("\n+++ /dev/null\n") {
            let new = diff::apply(&old, fpatch)
                .map_err(|e| bad(format!("{id}: patch does not apply to {file}: {e}")))?;
            oracle_new_content.insert(file.to_string(), new);
        }
    }
    stats.test_files = diff::split_files(test_patch).len();
    let pr_number = id.rsplit('-').next().and_then(|n| n.parse().ok());
    Ok(Instance {
        id: id.to_string(),
        repo: repo_name.to_string(),
        pr_number,
        kind: UnitKind::Swebench,
        base_commit: base.to_string(),
        merge_commit: String::new(),
        head_commit: String::new(),
        commits: Vec::new(),
        created_at: v
            .get("created_at")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        author: String::new(),
        title: String::new(),
        body: String::new(),
        problem_statement: problem.to_string(),
        hints: hints.to_string(),
        linked_issues: v
            .get("issue_numbers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_u64().or_else(|| n.as_str()?.parse().ok()))
                    .collect()
            })
            .unwrap_or_default(),
        code_context,
        oracle_new_content,
        oracle_patch: patch.to_string(),
        test_patch: test_patch.to_string(),
        relevant_files: Vec::new(),
        stats,
    })
}
