//! Units of change recovered from history, and turning one into an `Instance`.

use std::collections::{BTreeMap, HashSet};

use gix::hash::ObjectId;

use crate::diff::{self, Side};
use crate::filter::{FilterConfig, Reject};
use crate::git::{Change, EntryKind, Repo};
use crate::instance::{rfc3339, Instance, RelevantFile, Stats, UnitKind};
use crate::{refs, relevant, rules, Error};

/// What the sequential history pass hands to the (parallel) extraction.
#[derive(Clone, Debug)]
pub struct Unit {
    pub kind: UnitKind,
    pub pr_number: Option<u64>,
    pub base: Option<ObjectId>,
    pub head: ObjectId,
    pub merge: ObjectId,
    /// `base`'s tree, known to the walk already (decoding the commit again cost ~5%).
    pub base_tree: Option<ObjectId>,
    /// Oldest first.
    pub commits: Vec<ObjectId>,
    pub title: String,
    pub body: String,
    pub author: String,
    pub merged_at: i64,
    pub first_commit_at: i64,
    /// Text scanned for `Fixes #N`: title, body and every intermediate commit message.
    pub ref_text: String,
    pub changes: Vec<Change>,
    /// Co-change candidates (path, score), best first.
    pub cochange: Vec<(Vec<u8>, u32)>,
}

/// A kept unit plus what enrichment still needs.
pub struct Extracted {
    pub instance: Instance,
    pub first_commit_at: i64,
    pub patch_hash: u128,
    /// Commit messages of the unit, for re-scanning issue references after enrichment.
    pub ref_text: String,
}

struct FileText {
    path: String,
    mode: &'static str,
    id: String,
    text: String,
}

enum Side_ {
    Text(FileText),
    Skipped,
}

fn utf8(bytes: &[u8]) -> Result<String, Reject> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Reject::NonUtf8)
}

fn load_side(
    repo: &Repo,
    path: &[u8],
    entry: Option<crate::git::Entry>,
    cfg: &FilterConfig,
    stats: &mut Stats,
) -> Result<Option<Side_>, Outcome> {
    let Some(entry) = entry else { return Ok(None) };
    match entry.kind {
        EntryKind::Submodule => {
            stats.skipped_submodule += 1;
            return Ok(Some(Side_::Skipped));
        }
        EntryKind::Symlink => {
            stats.skipped_symlink += 1;
            return Ok(Some(Side_::Skipped));
        }
        _ => {}
    }
    let data = repo.blob(entry.id).map_err(Outcome::Corrupt)?;
    if data.len() > cfg.max_file_bytes {
        return Err(Outcome::Reject(Reject::FileTooLarge));
    }
    if diff::is_binary(&data) {
        stats.skipped_binary += 1;
        return Ok(Some(Side_::Skipped));
    }
    let path = utf8(path).map_err(Outcome::Reject)?;
    let text = String::from_utf8(data).map_err(|_| Outcome::Reject(Reject::NonUtf8))?;
    Ok(Some(Side_::Text(FileText {
        path,
        mode: entry.kind.mode(),
        id: entry.id.to_string(),
        text,
    })))
}

/// Why extraction produced no instance.
#[derive(Debug)]
pub enum Outcome {
    Reject(Reject),
    Corrupt(Error),
}

struct FilePair {
    old: Option<FileText>,
    new: Option<FileText>,
    similarity: Option<u32>,
}

/// Pairs deleted and added text files into renames: identical blobs first, then git's
/// default 50% similarity (only when the candidate set is small enough to compare all pairs).
fn pair_renames(pairs: &mut Vec<FilePair>) {
    let deleted: Vec<usize> = (0..pairs.len())
        .filter(|&i| pairs[i].new.is_none())
        .collect();
    let added: Vec<usize> = (0..pairs.len())
        .filter(|&i| pairs[i].old.is_none())
        .collect();
    let mut matches: Vec<(usize, usize, u32)> = Vec::new();
    let mut used_d = HashSet::new();
    let mut used_a = HashSet::new();
    for &d in &deleted {
        for &a in &added {
            if !used_a.contains(&a)
                && pairs[d].old.as_ref().map(|f| &f.id) == pairs[a].new.as_ref().map(|f| &f.id)
            {
                matches.push((d, a, 100));
                used_d.insert(d);
                used_a.insert(a);
                break;
            }
        }
    }
    if deleted.len() * added.len() <= 400 {
        let mut scored = Vec::new();
        for &d in deleted.iter().filter(|d| !used_d.contains(*d)) {
            for &a in added.iter().filter(|a| !used_a.contains(*a)) {
                let (o, n) = (
                    pairs[d].old.as_ref().expect("deleted"),
                    pairs[a].new.as_ref().expect("added"),
                );
                let sim = diff::similarity(&o.text, &n.text);
                if sim >= 50 {
                    scored.push((sim, d, a));
                }
            }
        }
        scored.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        for (sim, d, a) in scored {
            if !used_d.contains(&d) && !used_a.contains(&a) {
                used_d.insert(d);
                used_a.insert(a);
                matches.push((d, a, sim));
            }
        }
    }
    let mut remove = Vec::new();
    for (d, a, sim) in matches {
        let new = pairs[a].new.take();
        pairs[d].new = new;
        pairs[d].similarity = Some(sim);
        remove.push(a);
    }
    remove.sort_unstable_by(|a, b| b.cmp(a));
    for a in remove {
        pairs.remove(a);
    }
}

/// Builds the instance for `unit`, applying every per-unit filter (not dedup).
pub fn extract(
    repo: &Repo,
    repo_name: &str,
    unit: &Unit,
    cfg: &FilterConfig,
) -> Result<Extracted, Outcome> {
    if rules::is_bot(&unit.author, &unit.title, &unit.body) {
        return Err(Outcome::Reject(Reject::Bot));
    }
    if unit.changes.is_empty() {
        return Err(Outcome::Reject(Reject::Empty));
    }
    if unit.changes.len() > cfg.max_files {
        return Err(Outcome::Reject(Reject::TooManyFiles));
    }
    let mut stats = Stats {
        files_changed: unit.changes.len(),
        commits: unit.commits.len(),
        ..Stats::default()
    };
    let mut pairs = Vec::new();
    for ch in &unit.changes {
        let old = load_side(repo, &ch.old_path, ch.old, cfg, &mut stats)?;
        let new = load_side(repo, &ch.new_path, ch.new, cfg, &mut stats)?;
        let text = |s: Option<Side_>| match s {
            Some(Side_::Text(t)) => Ok(Some(t)),
            Some(Side_::Skipped) => Err(()),
            None => Ok(None),
        };
        // A file that is binary/symlink/submodule on either side is left out of the patch.
        if let (Ok(old), Ok(new)) = (text(old), text(new)) {
            pairs.push(FilePair {
                old,
                new,
                similarity: None,
            });
        }
    }
    pair_renames(&mut pairs);
    pairs.sort_by(|a, b| path_of(a).cmp(path_of(b)));

    let mut oracle_patch = String::new();
    let mut test_patch = String::new();
    let mut code_context = BTreeMap::new();
    let mut oracle_new_content = BTreeMap::new();
    let mut all_noise = true;
    let mut modified = HashSet::new();
    for p in pairs {
        let (patch, counts) = diff::file_patch(side(&p.old), side(&p.new), p.similarity);
        stats.lines_added += counts.added;
        stats.lines_removed += counts.removed;
        stats.renames += usize::from(p.similarity.is_some());
        let path = path_of(&p);
        for f in [&p.old, &p.new].into_iter().flatten() {
            modified.insert(f.path.clone().into_bytes());
        }
        if diff::is_test_path(path) {
            stats.test_files += 1;
            test_patch.push_str(&patch);
            continue;
        }
        stats.code_files += 1;
        if rules::noise_kind(path).is_none() && !rules::is_version_bump(&patch) {
            all_noise = false;
        }
        oracle_patch.push_str(&patch);
        // Contents move into the instance: they are the bulk of its bytes.
        if let Some(old) = p.old {
            code_context.insert(old.path, old.text);
        }
        if let Some(new) = p.new {
            oracle_new_content.insert(new.path, new.text);
        }
    }
    if oracle_patch.is_empty()
        && test_patch.is_empty()
        && stats.skipped_binary + stats.skipped_symlink + stats.skipped_submodule == 0
    {
        return Err(Outcome::Reject(Reject::Empty));
    }
    if stats.lines_added + stats.lines_removed > cfg.max_changed_lines {
        return Err(Outcome::Reject(Reject::TooManyLines));
    }
    if all_noise {
        return Err(Outcome::Reject(Reject::NoiseOnly));
    }

    let relevant_files = match unit.base_tree {
        Some(base_tree) => relevant::choose(
            repo,
            base_tree,
            &unit.cochange,
            &modified,
            &code_context,
            cfg,
        )
        .map_err(Outcome::Corrupt)?,
        None => Vec::new(),
    };
    let relevant_files: Vec<RelevantFile> = relevant_files
        .into_iter()
        .map(|(rf, text)| {
            code_context.insert(rf.path.clone(), text);
            rf
        })
        .collect();

    let (owner_repo, suffix) = (
        repo_name.replace('/', "__"),
        match unit.pr_number {
            Some(n) => n.to_string(),
            None => unit.head.to_string()[..12].to_string(),
        },
    );
    let problem_statement = format!("{}\n\n{}", unit.title, unit.body)
        .trim()
        .to_string();
    let patch_hash = diff::normalized_hash_of(&[&oracle_patch, &test_patch]);
    let instance = Instance {
        id: format!("{owner_repo}-{suffix}"),
        repo: repo_name.to_string(),
        pr_number: unit.pr_number,
        kind: unit.kind,
        base_commit: unit.base.map(|b| b.to_string()).unwrap_or_default(),
        merge_commit: unit.merge.to_string(),
        head_commit: unit.head.to_string(),
        commits: unit.commits.iter().map(|c| c.to_string()).collect(),
        created_at: rfc3339(unit.merged_at),
        author: unit.author.clone(),
        title: unit.title.clone(),
        body: unit.body.clone(),
        problem_statement,
        hints: String::new(),
        linked_issues: refs::linked_issues(&unit.ref_text),
        code_context,
        oracle_new_content,
        oracle_patch,
        test_patch,
        relevant_files,
        stats,
    };
    Ok(Extracted {
        instance,
        first_commit_at: unit.first_commit_at,
        patch_hash,
        ref_text: unit.ref_text.clone(),
    })
}

fn side(f: &Option<FileText>) -> Option<Side<'_>> {
    f.as_ref().map(|f| Side {
        path: &f.path,
        mode: f.mode,
        id: &f.id,
        text: &f.text,
    })
}

fn path_of(p: &FilePair) -> &str {
    p.new
        .as_ref()
        .or(p.old.as_ref())
        .map(|f| f.path.as_str())
        .unwrap_or("")
}
