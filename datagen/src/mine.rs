//! One pass over a repository's history, as a pipeline: this thread walks history (finding
//! units of change and keeping the co-change window) while `jobs` worker threads extract,
//! enrich and serialise batches of units; results are deduplicated and handed on in walk
//! order, so output is identical for any `jobs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use gix::hash::ObjectId;

use crate::blobcache::{BlobCache, PackCache};
use crate::events::Events;
use crate::filter::{FilterConfig, Reject, Report};
use crate::git::{CommitInfo, Repo};
use crate::instance::{Instance, UnitKind};
use crate::readahead::{
    lock, read_commit, read_during_walk, Order, Plan, Read, WalkShare, READ_CHUNK,
};
use crate::record;
use crate::relevant::Window;
use crate::unit::{extract, Outcome, Unit};
use crate::{refs, Error, Result};

#[derive(Clone, Debug)]
pub struct MineOptions {
    pub all_commits: bool,
    /// Worker threads extracting instances; the history walk runs on the calling thread.
    pub jobs: usize,
    pub filter: FilterConfig,
    /// Change sets remembered for co-change scoring.
    pub window: usize,
    /// Units per batch handed to a worker (with the queue depth, bounds memory).
    pub batch: usize,
}

impl Default for MineOptions {
    fn default() -> Self {
        MineOptions {
            all_commits: false,
            jobs: 1,
            filter: FilterConfig::default(),
            window: 2000,
            batch: 64,
        }
    }
}

/// Raw commits kept between the `--all-commits` walk and the readers (bounded, unlike the
/// history). The walk reads history newest first and the visit goes oldest first: the
/// newest commits are read ahead during the walk before this FIFO drops them, and it ends
/// holding the oldest, visited first; on a history whose commits take more than this, the
/// ones in between are read from the pack again.
const COMMIT_CACHE_BYTES: usize = 32 << 20;

pub struct Miner {
    opts: MineOptions,
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
        let mut report = Report::default();
        if let Some(ev) = &events {
            report.events_read = ev.read;
            report.events_trimmed = ev.trimmed;
        }
        Ok(Miner {
            opts,
            seen: HashSet::new(),
            events,
            report,
        })
    }

    /// Mines one repository, handing each kept instance to `sink` and the running report
    /// to `progress` now and then.
    ///
    /// Only history reachable from HEAD (a clone's default branch) is mined: PR merges and
    /// squash commits on HEAD's first-parent line, and with `all_commits` every commit
    /// reachable from HEAD. A PR merged only into another branch (a release or backport
    /// branch) is skipped: such PRs mostly repeat changes already merged into the default
    /// branch (dedup would drop them), and walking every ref would make the co-change
    /// window and the output order depend on which branches a clone happens to carry. To
    /// mine another branch, point HEAD at it (or pass a clone checked out on it).
    pub fn mine_repo(
        &mut self,
        path: &Path,
        name: Option<&str>,
        sink: &mut dyn FnMut(Instance) -> Result<()>,
        progress: &mut dyn FnMut(&Report),
    ) -> Result<()> {
        self.run(
            path,
            name,
            false,
            &mut |out| match out {
                Output::Instance(i) => sink(*i),
                Output::Json(_) => unreachable!("instances requested"),
            },
            progress,
        )
    }

    /// Like `mine_repo`, but each kept instance arrives as its dataset record (the JSON
    /// bytes `DatasetWriter::push_bytes` stores), serialised on the worker threads.
    pub fn mine_repo_records(
        &mut self,
        path: &Path,
        name: Option<&str>,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
        progress: &mut dyn FnMut(&Report),
    ) -> Result<()> {
        self.run(
            path,
            name,
            true,
            &mut |out| match out {
                Output::Json(b) => sink(&b),
                Output::Instance(_) => unreachable!("records requested"),
            },
            progress,
        )
    }

    fn run(
        &mut self,
        path: &Path,
        name: Option<&str>,
        json: bool,
        sink: &mut dyn FnMut(Output) -> Result<()>,
        progress: &mut dyn FnMut(&Report),
    ) -> Result<()> {
        let blobs = Arc::new(BlobCache::new(64 << 20));
        let pack = PackCache::new(96 << 20);
        let commits = Arc::new(BlobCache::new(COMMIT_CACHE_BYTES));
        let repo = Repo::open(path)?
            .with_shared_caches(blobs.clone(), &pack)
            .with_commit_cache(commits.clone());
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
        let shared = repo.share();
        let jobs = self.opts.jobs.max(1);
        let cfg = self.opts.filter.clone();
        let events = self.events.take();
        let work = Work {
            name: &name,
            cfg: &cfg,
            events: events.as_ref(),
            json,
        };
        let all_commits = self.opts.all_commits;
        let walk = WalkShare::default();
        let plan: OnceLock<Plan> = OnceLock::new();
        let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Vec<Unit>)>(jobs * 2);
        let work_rx = Mutex::new(work_rx);
        let (done_tx, done_rx) = mpsc::channel::<(u64, Vec<Done>)>();
        let r = std::thread::scope(|scope| {
            for _ in 0..jobs {
                let (work_rx, done_tx, shared, work) = (&work_rx, done_tx.clone(), &shared, &work);
                let (blobs, pack) = (blobs.clone(), &pack);
                scope.spawn(move || {
                    // One handle per worker for the whole run; its caches stay warm.
                    let repo = Repo::from_shared(shared, path).with_shared_caches(blobs, pack);
                    loop {
                        let next = work_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((seq, units)) = next else { break };
                        let out = units.iter().map(|u| work.process(&repo, u)).collect();
                        if done_tx.send((seq, out)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            // Readers decode and diff commits ahead of the walk, chunk c on reader
            // c % jobs, so only the co-change window stays on this thread. While the
            // `--all-commits` history walk runs, they diff its newest commits (which come
            // last in walk order) instead of idling until it ends.
            let (pre_tx, pre_rx) = mpsc::channel::<(usize, Vec<Result<Read>>)>();
            let mut readers = Vec::new();
            let mut go = Vec::new();
            for t in 0..jobs {
                let (tx, rx) = mpsc::sync_channel::<Vec<Result<Read>>>(2);
                readers.push(rx);
                let (go_tx, go_rx) = mpsc::channel::<()>();
                go.push(go_tx);
                let (shared, blobs, pack) = (&shared, blobs.clone(), &pack);
                let (walk, plan, pre_tx, commits) = (&walk, &plan, pre_tx.clone(), commits.clone());
                scope.spawn(move || {
                    let repo = Repo::from_shared(shared, path)
                        .with_shared_caches(blobs, pack)
                        .with_commit_cache(commits);
                    // One core stays with the walk, which everything else waits for.
                    let during_walk = (jobs - 1).max(1);
                    if all_commits && t < during_walk {
                        read_during_walk(&repo, walk, t, during_walk, &pre_tx);
                    }
                    drop(pre_tx);
                    if go_rx.recv().is_err() {
                        return;
                    }
                    let Some(plan) = plan.get() else { return };
                    let mut last = None;
                    for c in (t..plan.ahead.div_ceil(READ_CHUNK)).step_by(jobs) {
                        let read = (c * READ_CHUNK..((c + 1) * READ_CHUNK).min(plan.ahead))
                            .map(|j| read_commit(&repo, plan, j, all_commits, &mut last))
                            .collect();
                        if tx.send(read).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(pre_tx);
            let mut pre: HashMap<usize, Vec<Result<Read>>> = HashMap::new();
            let walked = if all_commits {
                let ok = repo.walk(head, &mut |batch| walk.push(batch));
                walk.finish();
                pre.extend(pre_rx);
                let w = std::mem::take(&mut *lock(&walk.state));
                ok.then_some(w)
            } else {
                None
            };
            // Pre-read chunks count from the newest commit on, without gaps.
            let pre: Vec<Result<Read>> = match &walked {
                Some(_) => (0..).map_while(|b| pre.remove(&b)).flatten().collect(),
                None => Vec::new(),
            };
            let order = match walked {
                Some(w) => Order::Walked(w),
                None if all_commits => Order::Ids(repo.all_commits(head)?),
                None => Order::Ids(self.first_parent_line(&repo, head)),
            };
            let ahead = order.len() - pre.len();
            let plan = plan.get_or_init(|| Plan { order, ahead });
            for g in go {
                let _ = g.send(());
            }
            let n_chunks = ahead.div_ceil(READ_CHUNK);
            let mut pre = pre.into_iter().rev();
            let mut ordered = Ordered::default();
            let mut window = Window::new(self.opts.window);
            let mut pending: Vec<Unit> = Vec::new();
            let mut reads = (0..n_chunks)
                .flat_map(|c| match readers[c % jobs].recv() {
                    Ok(chunk) => chunk,
                    Err(_) => vec![Err(Error::Git {
                        op: "read commits",
                        msg: "a reader thread stopped early".into(),
                    })],
                })
                .chain(std::iter::from_fn(|| pre.next()));
            for j in 0..plan.order.len() {
                self.report.commits_walked += 1;
                if self.report.commits_walked.is_multiple_of(512) {
                    progress(&self.report);
                }
                let read = reads.next().unwrap_or_else(|| {
                    Err(Error::Git {
                        op: "read commits",
                        msg: format!("no result for {}", plan.order.id(j)),
                    })
                });
                match self.visit(&repo, read, &mut window) {
                    Ok(Some(unit)) => pending.push(unit),
                    Ok(None) => {}
                    Err(_) => {
                        self.report.units += 1;
                        self.report.reject(Reject::CorruptObject);
                    }
                }
                if pending.len() >= self.opts.batch {
                    let batch = std::mem::take(&mut pending);
                    ordered.send(&work_tx, batch)?;
                    while let Ok(d) = done_rx.try_recv() {
                        ordered.ready.insert(d.0, d.1);
                    }
                    self.write_ready(&mut ordered, sink)?;
                }
            }
            if !pending.is_empty() {
                ordered.send(&work_tx, pending)?;
            }
            // Workers stop once the queue is drained and closed.
            drop(work_tx);
            for d in done_rx {
                ordered.ready.insert(d.0, d.1);
                self.write_ready(&mut ordered, sink)?;
            }
            if ordered.next_write != ordered.next_send {
                return Err(Error::Git {
                    op: "extract units",
                    msg: "a worker thread stopped early".into(),
                });
            }
            Ok(())
        });
        self.events = events;
        progress(&self.report);
        r
    }

    /// Hands on, in walk order, every batch whose turn has come.
    fn write_ready(
        &mut self,
        ordered: &mut Ordered,
        sink: &mut dyn FnMut(Output) -> Result<()>,
    ) -> Result<()> {
        while let Some(batch) = ordered.ready.remove(&ordered.next_write) {
            ordered.next_write += 1;
            for d in batch {
                match d {
                    Done::Kept {
                        hash,
                        enriched,
                        out,
                    } => {
                        if !self.seen.insert(hash) {
                            self.report.reject(Reject::Duplicate);
                            continue;
                        }
                        self.report.prs_enriched += u64::from(enriched);
                        self.report.kept += 1;
                        sink(out)?;
                    }
                    Done::Rejected(why) => self.report.reject(why),
                }
            }
        }
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
    /// Looks at one commit read ahead: returns the unit it defines, if any, and records its
    /// change set.
    fn visit(
        &mut self,
        repo: &Repo,
        read: Result<Read>,
        window: &mut Window,
    ) -> Result<Option<Unit>> {
        let Read {
            c,
            parent_tree,
            changes,
        } = read?;
        let (id, first) = (c.id, c.parents.first().copied());
        let k = self.opts.filter.relevant_k * 4;
        if c.parents.len() >= 2 {
            let unit = match refs::merge_pr_number(c.subject()) {
                Some(n) => Some(self.merge_unit(repo, &c, n, window, k)?),
                None => None,
            };
            if let Some(changes) = &changes {
                window.push(changes.iter().map(|ch| ch.new_path.as_slice()));
            }
            if unit.is_some() {
                self.report.units += 1;
            }
            return Ok(unit);
        }
        let changes = changes.unwrap_or_default();
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
                base_tree: parent_tree,
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
        window: &mut Window,
        k: usize,
    ) -> Result<Unit> {
        let (p1, p2) = (c.parents[0], c.parents[1]);
        let base = repo.merge_base(p1, p2)?;
        let mut commits = repo.range(p1, p2)?;
        commits.reverse();
        let head = repo.commit(p2)?;
        let base_tree = Self::tree_of(repo, base)?;
        let changes = repo.diff_trees(base_tree, Some(head.tree))?;
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
            base_tree,
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
}

/// A kept instance as the caller asked for it.
enum Output {
    Instance(Box<Instance>),
    Json(Vec<u8>),
}

/// A worker's verdict on one unit.
enum Done {
    Kept {
        hash: u128,
        enriched: bool,
        out: Output,
    },
    Rejected(Reject),
}

/// Batch bookkeeping: sequence numbers sent, results waiting for their turn.
#[derive(Default)]
struct Ordered {
    next_send: u64,
    next_write: u64,
    ready: BTreeMap<u64, Vec<Done>>,
}

impl Ordered {
    fn send(&mut self, tx: &mpsc::SyncSender<(u64, Vec<Unit>)>, batch: Vec<Unit>) -> Result<()> {
        tx.send((self.next_send, batch)).map_err(|_| Error::Git {
            op: "extract units",
            msg: "every worker thread stopped".into(),
        })?;
        self.next_send += 1;
        Ok(())
    }
}

/// What the worker threads share (read-only).
struct Work<'a> {
    name: &'a str,
    cfg: &'a FilterConfig,
    events: Option<&'a Events>,
    json: bool,
}

impl Work<'_> {
    fn process(&self, repo: &Repo, unit: &Unit) -> Done {
        // A panic inside gix on a damaged object must not take the run down with it.
        let r = catch_unwind(AssertUnwindSafe(|| {
            extract(repo, self.name, unit, self.cfg)
        }));
        let mut ex = match r {
            Ok(Ok(ex)) => ex,
            Ok(Err(Outcome::Reject(why))) => return Done::Rejected(why),
            Ok(Err(Outcome::Corrupt(_))) | Err(_) => return Done::Rejected(Reject::CorruptObject),
        };
        // Enriching a unit that later turns out to be a duplicate is wasted but harmless.
        let enriched = self
            .events
            .is_some_and(|ev| ev.enrich(&mut ex.instance, ex.first_commit_at, &ex.ref_text));
        let out = if self.json {
            // Sized up front: records are mostly file contents, and growing by doubling
            // cost several reallocations per record.
            let i = &ex.instance;
            let guess = 1024
                + [&i.oracle_patch, &i.test_patch, &i.body]
                    .iter()
                    .map(|s| s.len())
                    .sum::<usize>()
                + i.code_context
                    .values()
                    .chain(i.oracle_new_content.values())
                    .map(String::len)
                    .sum::<usize>();
            let mut buf = Vec::with_capacity(guess + guess / 8);
            record::write_instance(&mut buf, i);
            Output::Json(buf)
        } else {
            Output::Instance(Box::new(ex.instance))
        };
        Done::Kept {
            hash: ex.patch_hash,
            enriched,
            out,
        }
    }
}
