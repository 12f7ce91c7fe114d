//! Commits read and diffed ahead of the miner's visit, on reader threads: the visit order
//! (the history walk's), what the `--all-commits` walk shares with the readers while it
//! runs, and the reads themselves.

use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};

use gix::hash::ObjectId;

use crate::git::{Change, CommitInfo, Repo, WalkedCommit};
use crate::Result;

/// Commits per read-ahead chunk.
pub(crate) const READ_CHUNK: usize = 128;

/// Chunks at most that readers diff while the walk runs: bounds what waits in memory for
/// the walk to end, whatever the length of the history.
pub(crate) const MAX_CHUNKS_DURING_WALK: usize = 128;

/// Commits in visit order, oldest first.
pub(crate) enum Order {
    /// PR-only mode, or a history the walk could not read.
    Ids(Vec<ObjectId>),
    /// The `--all-commits` walk, newest first as walked (visited back to front).
    Walked(Vec<WalkedCommit>),
}

impl Order {
    pub(crate) fn len(&self) -> usize {
        match self {
            Order::Ids(ids) => ids.len(),
            Order::Walked(w) => w.len(),
        }
    }

    /// The `j`th commit to visit.
    pub(crate) fn id(&self, j: usize) -> ObjectId {
        match self {
            Order::Ids(ids) => ids[j],
            Order::Walked(w) => w[w.len() - 1 - j].id,
        }
    }

    /// The tree of the `j`th commit's first parent (`Some(None)` for a root) when the walk
    /// has it, which saves reading the parent again.
    fn first_parent_tree(&self, j: usize) -> Option<Option<ObjectId>> {
        match self {
            Order::Ids(_) => None,
            Order::Walked(w) => Some(w[w.len() - 1 - j].first_parent().map(|p| w[p].tree)),
        }
    }
}

/// What the readers follow once the walk is over: commits in visit order and how many of
/// the oldest the readers still diff (the rest were diffed during the walk).
pub(crate) struct Plan {
    pub(crate) order: Order,
    pub(crate) ahead: usize,
}

/// The history walk so far (newest first), shared with the readers.
#[derive(Default)]
pub(crate) struct WalkShare {
    pub(crate) state: Mutex<Vec<WalkedCommit>>,
    /// Signalled after each batch of commits and when the walk ends.
    grown: Condvar,
    done: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WalkShare {
    pub(crate) fn push(&self, batch: Vec<WalkedCommit>) {
        lock(&self.state).extend(batch);
        self.grown.notify_all();
    }

    pub(crate) fn finish(&self) {
        let _k = lock(&self.state);
        self.done.store(true, AtomicOrdering::SeqCst);
        self.grown.notify_all();
    }
}

/// A commit decoded and diffed against its first parent ahead of the visit.
pub(crate) struct Read {
    pub(crate) c: CommitInfo,
    /// The first parent's tree.
    pub(crate) parent_tree: Option<ObjectId>,
    /// `None` for merges when mining every commit (their changes are the branch's commits).
    pub(crate) changes: Option<Vec<Change>>,
}

/// Reader `t` of `jobs` during the `--all-commits` walk: reads walk chunks t, t + jobs, ...
/// (newest commits first) once they and their parents are walked, until the walk ends.
pub(crate) fn read_during_walk(
    repo: &Repo,
    walk: &WalkShare,
    t: usize,
    jobs: usize,
    tx: &mpsc::Sender<(usize, Vec<Result<Read>>)>,
) {
    for b in (t..MAX_CHUNKS_DURING_WALK).step_by(jobs) {
        // A chunk's parents are nearly always walked one chunk later in a breadth-first walk.
        let want = (b + 2) * READ_CHUNK;
        // (commit, its tree, its first parent's tree when the walk has it)
        type Todo = (ObjectId, ObjectId, Option<Option<ObjectId>>);
        let todo: Vec<Todo> = {
            let mut w = lock(&walk.state);
            while w.len() < want && !walk.done.load(AtomicOrdering::SeqCst) {
                w = walk.grown.wait(w).unwrap_or_else(|e| e.into_inner());
            }
            if walk.done.load(AtomicOrdering::SeqCst) {
                return;
            }
            w[b * READ_CHUNK..(b + 1) * READ_CHUNK]
                .iter()
                .map(|c| {
                    let parent_tree = match c.first_parent() {
                        None => Some(None),
                        Some(p) => w.get(p).map(|pc| Some(pc.tree)),
                    };
                    (c.id, c.tree, parent_tree)
                })
                .collect()
        };
        // Oldest first within the chunk: newer objects are stored as deltas against older
        // ones, so this order finds delta bases in the shared cache.
        let mut reads: Vec<Result<Read>> = todo
            .into_iter()
            .rev()
            .map(|(id, tree, parent_tree)| {
                let c = repo.commit(id)?;
                let parent_tree = match parent_tree {
                    Some(pt) => pt,
                    None => match c.parents.first() {
                        Some(&p) => Some(repo.commit(p)?.tree),
                        None => None,
                    },
                };
                let changes = if c.parents.len() >= 2 {
                    None
                } else {
                    Some(repo.diff_trees(parent_tree, Some(tree))?)
                };
                Ok(Read {
                    c,
                    parent_tree,
                    changes,
                })
            })
            .collect();
        reads.reverse();
        if tx.send((b, reads)).is_err() {
            return;
        }
    }
}

/// Reads the `j`th commit of `plan`; without the walk's parent trees, `last` (the previous
/// commit and its tree) usually saves reading the parent again, as visits mostly step
/// from a parent to its child.
pub(crate) fn read_commit(
    repo: &Repo,
    plan: &Plan,
    j: usize,
    all_commits: bool,
    last: &mut Option<(ObjectId, ObjectId)>,
) -> Result<Read> {
    let c = repo.commit(plan.order.id(j))?;
    let first = c.parents.first().copied();
    let parent_tree = match (plan.order.first_parent_tree(j), first, *last) {
        (Some(pt), _, _) => pt,
        (None, Some(p), Some((lc, lt))) if p == lc => Some(lt),
        (None, first, _) => first
            .map(|p| repo.commit(p).map(|pc| pc.tree))
            .transpose()?,
    };
    *last = Some((c.id, c.tree));
    let changes = if c.parents.len() >= 2 && all_commits {
        None
    } else {
        Some(repo.diff_trees(parent_tree, Some(c.tree))?)
    };
    Ok(Read {
        c,
        parent_tree,
        changes,
    })
}
