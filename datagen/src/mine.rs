//! One pass over a repository's history: a sequential walk finds units of change and keeps
//! the co-change window; batches of units are extracted in parallel; filtering, dedup and
//! enrichment happen in order, so output is deterministic for any `jobs`.

use std::collections::HashSet;
use std::path::Path;

use gix::hash::ObjectId;
use rayon::prelude::*;

use crate::events::Events;
use crate::filter::{FilterConfig, Reject, Report};
use crate::git::{CommitInfo, Repo};
use crate::instance::{Instance, UnitKind};
use crate::relevant::Window;
use crate::unit::{extract, Outcome, Unit};
use crate::{refs, Error, Result};

#[derive(Clone, Debug)]
pub struct MineOptions {
    pub all_commits: bool,
    pub jobs: usize,
    pub filter: FilterConfig,
    /// Change sets remembered for co-change scoring.
    pub window: usize,
    /// Units extracted per parallel batch (bounds memory).
    pub batch: usize,
}

impl Default for MineOptions {
    fn default() -> Self {
        MineOptions {
            all_commits: false,
            jobs: 1,
            filter: FilterConfig::default(),
            window: 2000,
            batch: 256,
        }
    }
}

pub struct Miner {
    opts: MineOptions,
    pool: rayon::ThreadPool,
    seen: HashSet<u128>,
    events: Option<Events>,
    pub report: Report,
}

/// `owner/name` for a repository: its origin remote, else `local/<directory name>`.
pub fn repo_name(repo: &Repo) -> String {
    repo.origin_name().unwrap_or_else(|| {
        let dir = repo
            .path
            .canonicalize()
            .unwrap_or_else(|_| repo.path.clone());
        let mut name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == ".git" {
            name = dir
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        format!("local/{}", name.trim_end_matches(".git"))
    })
}

fn split_message(msg: &str) -> (String, String) {
    let msg = msg.trim();
    match msg.split_once('\n') {
        Some((t, b)) => (t.trim().to_string(), b.trim().to_string()),
        None => (msg.to_string(), String::new()),
    }
}

impl Miner {
    pub fn new(opts: MineOptions, events: Option<Events>) -> Result<Miner> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.jobs.max(1))
            .build()
            .map_err(|e| Error::Git {
                op: "start worker threads",
                msg: e.to_string(),
            })?;
        let mut report = Report::default();
        if let Some(ev) = &events {
            report.events_read = ev.read;
            report.events_trimmed = ev.trimmed;
        }
        Ok(Miner {
            opts,
            pool,
            seen: HashSet::new(),
            events,
            report,
        })
    }

    /// Mines one repository, handing each kept instance to `sink` and the running report
    /// to `progress` after every batch.
    pub fn mine_repo(
        &mut self,
        path: &Path,
        name: Option<&str>,
        sink: &mut dyn FnMut(Instance) -> Result<()>,
        progress: &mut dyn FnMut(&Report),
    ) -> Result<()> {
        let repo = Repo::open(path)?;
        let name = name.map(str::to_string).unwrap_or_else(|| repo_name(&repo));
        self.report.repos += 1;
        if self.opts.filter.is_contaminated(&name) {
            self.report.repos_decontaminated.push(name);
            return Ok(());
        }
        let Some(head) = repo.head()? else {
            self.report.repos_empty.push(name);
            return Ok(());
        };
        let order = if self.opts.all_commits {
            repo.all_commits(head)?
        } else {
            self.first_parent_line(&repo, head)
        };
        let shared = repo.share();
        // One repository handle per worker, kept for the whole run so object caches stay warm.
        let workers: Vec<std::sync::Mutex<Repo>> = (0..self.pool.current_num_threads())
            .map(|_| std::sync::Mutex::new(Repo::from_shared(&shared, path)))
            .collect();
        let mut last_tree: Option<(ObjectId, ObjectId)> = None;
        let mut window = Window::new(self.opts.window);
        let mut pending: Vec<Unit> = Vec::new();
        for id in order {
            self.report.commits_walked += 1;
            if self.report.commits_walked.is_multiple_of(512) {
                progress(&self.report);
            }
            match self.visit(&repo, id, &mut window, &mut last_tree) {
                Ok(Some(unit)) => pending.push(unit),
                Ok(None) => {}
                Err(_) => {
                    self.report.units += 1;
                    self.report.reject(Reject::CorruptObject);
                }
            }
            if pending.len() >= self.opts.batch {
                self.flush(&workers, &name, &mut pending, sink)?;
                progress(&self.report);
            }
        }
        self.flush(&workers, &name, &mut pending, sink)?;
        progress(&self.report);
        Ok(())
    }

    /// HEAD's first-parent chain, oldest first. A corrupt commit ends the chain (counted).
    fn first_parent_line(&mut self, repo: &Repo, head: ObjectId) -> Vec<ObjectId> {
        let mut out = Vec::new();
        let mut cur = Some(head);
        while let Some(id) = cur {
            out.push(id);
            cur = match repo.commit(id) {
                Ok(c) => c.parents.first().copied(),
                Err(_) => {
                    self.report.reject(Reject::CorruptObject);
                    None
                }
            };
        }
        out.reverse();
        out
    }

    fn tree_of(repo: &Repo, id: Option<ObjectId>) -> Result<Option<ObjectId>> {
        id.map(|id| repo.commit(id).map(|c| c.tree)).transpose()
    }

    /// Looks at one commit: returns the unit it defines, if any, and records its change set.
    fn visit(
        &mut self,
        repo: &Repo,
        id: ObjectId,
        window: &mut Window,
        last: &mut Option<(ObjectId, ObjectId)>,
    ) -> Result<Option<Unit>> {
        let c = repo.commit(id)?;
        let first = c.parents.first().copied();
        // Walks mostly step from a parent to its child: reuse the tree just read.
        let parent_tree = match (first, *last) {
            (Some(p), Some((lc, lt))) if p == lc => Some(lt),
            _ => Self::tree_of(repo, first)?,
        };
        *last = Some((id, c.tree));
        let k = self.opts.filter.relevant_k * 4;
        if c.parents.len() >= 2 {
            let unit = match refs::merge_pr_number(c.subject()) {
                Some(n) => Some(self.merge_unit(repo, &c, n, window, k)?),
                None => None,
            };
            if !self.opts.all_commits {
                let changes = repo.diff_trees(parent_tree, Some(c.tree))?;
                window.push(changes.iter().map(|ch| ch.new_path.as_slice()));
            }
            if unit.is_some() {
                self.report.units += 1;
            }
            return Ok(unit);
        }
        let changes = repo.diff_trees(parent_tree, Some(c.tree))?;
        let squash = refs::squash_pr_number(c.subject());
        let unit = if squash.is_some() || self.opts.all_commits {
            self.report.units += 1;
            let (title, body) = split_message(&c.message);
            let (kind, pr_number, title) = match squash {
                Some((t, n)) => (UnitKind::Squash, Some(n), t.to_string()),
                None => (UnitKind::Commit, None, title),
            };
            let cochange = window.candidates(changes.iter().map(|ch| ch.old_path.as_slice()), k);
            Some(Unit {
                kind,
                pr_number,
                base: first,
                head: id,
                merge: id,
                commits: vec![id],
                title,
                body,
                author: c.author_name.clone(),
                merged_at: c.committer_time,
                first_commit_at: c.author_time,
                ref_text: c.message.clone(),
                changes: Vec::new(),
                cochange,
            })
        } else {
            None
        };
        window.push(changes.iter().map(|ch| ch.new_path.as_slice()));
        Ok(unit.map(|mut u| {
            u.changes = changes;
            u
        }))
    }

    fn merge_unit(
        &mut self,
        repo: &Repo,
        c: &CommitInfo,
        n: u64,
        window: &Window,
        k: usize,
    ) -> Result<Unit> {
        let (p1, p2) = (c.parents[0], c.parents[1]);
        let base = repo.merge_base(p1, p2)?;
        let mut commits = repo.range(p1, p2)?;
        commits.reverse();
        let head = repo.commit(p2)?;
        let changes = repo.diff_trees(Self::tree_of(repo, base)?, Some(head.tree))?;
        // GitHub writes the PR title as the merge commit's body.
        let (_, rest) = split_message(&c.message);
        let (title, body) = split_message(&rest);
        let mut ref_text = format!("{title}\n{body}\n");
        let mut first_commit_at = head.author_time;
        for id in &commits {
            let ci = repo.commit(*id)?;
            first_commit_at = first_commit_at.min(ci.author_time);
            ref_text.push_str(&ci.message);
            ref_text.push('\n');
        }
        let cochange = window.candidates(changes.iter().map(|ch| ch.old_path.as_slice()), k);
        Ok(Unit {
            kind: UnitKind::Merge,
            pr_number: Some(n),
            base,
            head: p2,
            merge: c.id,
            commits,
            title,
            body,
            author: head.author_name.clone(),
            merged_at: c.committer_time,
            first_commit_at,
            ref_text,
            changes,
            cochange,
        })
    }

    fn flush(
        &mut self,
        workers: &[std::sync::Mutex<Repo>],
        name: &str,
        pending: &mut Vec<Unit>,
        sink: &mut dyn FnMut(Instance) -> Result<()>,
    ) -> Result<()> {
        let cfg = &self.opts.filter;
        let results: Vec<_> = self.pool.install(|| {
            pending
                .par_iter()
                .map(|unit| {
                    let i = rayon::current_thread_index().unwrap_or(0) % workers.len();
                    let repo = workers[i].lock().unwrap_or_else(|e| e.into_inner());
                    extract(&repo, name, unit, cfg)
                })
                .collect()
        });
        pending.clear();
        for r in results {
            match r {
                Ok(mut ex) => {
                    if !self.seen.insert(ex.patch_hash) {
                        self.report.reject(Reject::Duplicate);
                        continue;
                    }
                    if let Some(ev) = &self.events {
                        if ev.enrich(&mut ex.instance, ex.first_commit_at, &ex.ref_text) {
                            self.report.prs_enriched += 1;
                        }
                    }
                    self.report.kept += 1;
                    sink(ex.instance)?;
                }
                Err(Outcome::Reject(why)) => self.report.reject(why),
                Err(Outcome::Corrupt(_)) => self.report.reject(Reject::CorruptObject),
            }
        }
        Ok(())
    }
}
