//! Thin layer over `gix`: commits, trees and blobs as plain data, tree diffs that skip
//! unchanged subtrees by object id, merge bases and ranges. All git access of the miner
//! goes through here.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use gix::hash::ObjectId;
use gix::objs::{Find, Kind};

use crate::blobcache::{BlobCache, PackCache};
use crate::error::{Error, Result};
use crate::relevant::IdHasher;

/// What a tree entry points at, reduced to what the miner cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Executable,
    Symlink,
    Submodule,
}

impl EntryKind {
    pub fn mode(self) -> &'static str {
        match self {
            EntryKind::File => "100644",
            EntryKind::Executable => "100755",
            EntryKind::Symlink => "120000",
            EntryKind::Submodule => "160000",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: ObjectId,
    pub kind: EntryKind,
}

/// One path changed between two trees. Renames are paired later (see `diff::pair_renames`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub old_path: Vec<u8>,
    pub new_path: Vec<u8>,
    pub old: Option<Entry>,
    pub new: Option<Entry>,
}

/// A decoded commit, detached from the object buffer.
#[derive(Clone, Debug)]
pub struct CommitInfo {
    pub id: ObjectId,
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub author_name: String,
    pub author_email: String,
    pub author_time: i64,
    pub committer_time: i64,
    pub message: String,
}

impl CommitInfo {
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or("").trim()
    }
}

/// What the `--all-commits` walk keeps of each commit for the whole history: enough to
/// order commits and to find a commit's first parent's tree. Authors and messages (most of
/// a commit's bytes) are decoded again when the commit is visited, so the history costs
/// this struct per commit rather than its text.
#[derive(Clone, Copy, Debug)]
pub struct WalkedCommit {
    pub id: ObjectId,
    pub tree: ObjectId,
    /// The first parent's position in the walk (newest first), `NO_PARENT` for a root.
    /// Further parents are not kept: only the first one's tree is looked up, and the
    /// commit's own decode gives them all when it is visited.
    first_parent: u32,
}

/// `WalkedCommit::first_parent` of a root commit.
const NO_PARENT: u32 = u32::MAX;

impl WalkedCommit {
    /// The first parent's position in the walk (newest first).
    pub fn first_parent(&self) -> Option<usize> {
        (self.first_parent != NO_PARENT).then_some(self.first_parent as usize)
    }
}

/// A tree entry whose name lives in the tree's object buffer (`buf[start..end]`): parsing
/// a tree allocates nothing per entry, which mattered in the profile.
#[derive(Clone, Copy, Debug)]
struct Row {
    start: usize,
    end: usize,
    is_tree: bool,
    /// `None` for trees.
    entry: Option<Entry>,
    id: ObjectId,
}

impl Row {
    fn name<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start..self.end]
    }
}

/// A reusable object buffer and its parsed rows (one per level of a tree diff).
#[derive(Default)]
struct Scratch {
    buf: Vec<u8>,
    rows: Vec<Row>,
}

/// git's tree order: names compare bytewise, a tree's name as if it ended in `/`.
fn git_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Ordering::Equal => {
            let ca = a.get(n).copied().or(a_tree.then_some(b'/'));
            let cb = b.get(n).copied().or(b_tree.then_some(b'/'));
            ca.cmp(&cb)
        }
        o => o,
    }
}

/// Parses a raw tree (`<octal mode> <name>\0<id>`...) into `rows`, sorted in git's order
/// (stored trees already are; a malformed one is sorted rather than trusted).
fn parse_tree(id: &ObjectId, buf: &[u8], rows: &mut Vec<Row>) -> Result<()> {
    let bad = |msg: &str| Error::Object {
        id: id.to_string(),
        op: "decode tree",
        msg: msg.to_string(),
    };
    let hash_len = id.kind().len_in_bytes();
    rows.clear();
    // Every entry takes at least `<mode> <name>\0` (8 bytes) plus the id: room for all of
    // them up front instead of growing the vector row by row.
    rows.reserve(buf.len() / (hash_len + 8) + 1);
    let mut at = 0;
    let mut sorted = true;
    while at < buf.len() {
        let sp = buf[at..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("entry without a mode"))?;
        let mut mode = 0u32;
        for &d in &buf[at..at + sp] {
            if !(b'0'..=b'7').contains(&d) || sp > 7 || sp == 0 {
                return Err(bad("mode is not octal"));
            }
            mode = mode * 8 + u32::from(d - b'0');
        }
        let start = at + sp + 1;
        let nul = buf[start..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("entry name not terminated"))?;
        let end = start + nul;
        let oid_at = end + 1;
        let oid = buf
            .get(oid_at..oid_at + hash_len)
            .ok_or_else(|| bad("truncated object id"))?;
        let oid = ObjectId::from_bytes_or_panic(oid);
        let is_tree = mode & 0o170000 == 0o040000;
        let kind = match mode & 0o170000 {
            0o040000 => None,
            0o160000 => Some(EntryKind::Submodule),
            0o120000 => Some(EntryKind::Symlink),
            _ if mode & 0o111 != 0 => Some(EntryKind::Executable),
            _ => Some(EntryKind::File),
        };
        let row = Row {
            start,
            end,
            is_tree,
            entry: kind.map(|kind| Entry { id: oid, kind }),
            id: oid,
        };
        if let Some(prev) = rows.last() {
            sorted &=
                git_order(prev.name(buf), prev.is_tree, row.name(buf), is_tree) == Ordering::Less;
        }
        rows.push(row);
        at = oid_at + hash_len;
    }
    if !sorted {
        rows.sort_by(|x, y| git_order(x.name(buf), x.is_tree, y.name(buf), y.is_tree));
    }
    Ok(())
}

pub struct Repo {
    repo: gix::Repository,
    pub path: PathBuf,
    /// Buffers reused across tree reads (a `Repo` lives on one thread).
    scratch: RefCell<Vec<Scratch>>,
    /// Recently looked-up trees, most recent last.
    trees: RefCell<Vec<(ObjectId, Rc<Scratch>)>>,
    /// Blob contents shared with the other threads' handles, if any.
    blobs: Option<Arc<BlobCache>>,
    /// Raw commits the history walk read, for the readers that decode them in full.
    commits: Option<Arc<BlobCache>>,
}

fn git_err(op: &'static str) -> impl Fn(gix::Error) -> Error {
    move |e| Error::Git {
        op,
        msg: e.to_string(),
    }
}

impl Repo {
    /// Opens a bare or non-bare repository; shallow clones are refused because merge bases
    /// and co-change history computed on them would be silently wrong.
    pub fn open(path: &Path) -> Result<Repo> {
        let mut repo = gix::open(path).map_err(|e| Error::Open {
            path: path.to_owned(),
            msg: e.to_string(),
        })?;
        if repo.is_shallow().unwrap_or(false) {
            return Err(Error::Shallow {
                path: path.to_owned(),
            });
        }
        repo.object_cache_size_if_unset(64 << 20);
        Ok(Repo {
            repo,
            path: path.to_owned(),
            scratch: RefCell::default(),
            trees: RefCell::default(),
            blobs: None,
            commits: None,
        })
    }

    /// A handle usable on another thread (each thread keeps its own object caches).
    pub fn share(&self) -> gix::ThreadSafeRepository {
        self.repo.clone().into_sync()
    }

    /// Without gix's object cache: the miner's threads cache what they re-read themselves
    /// (parsed trees, shared blobs and delta bases), and a 64 MiB copy of every object read
    /// per thread cost more (page faults, copies) than it saved.
    pub fn from_shared(shared: &gix::ThreadSafeRepository, path: &Path) -> Repo {
        let repo = shared.to_thread_local();
        Repo {
            repo,
            path: path.to_owned(),
            scratch: RefCell::default(),
            trees: RefCell::default(),
            blobs: None,
            commits: None,
        }
    }

    /// Reads blobs through `blobs` and resolves pack deltas through `pack`, both shared
    /// with other threads' handles (see `blobcache`).
    pub fn with_shared_caches(mut self, blobs: Arc<BlobCache>, pack: &PackCache) -> Repo {
        let pack = pack.clone();
        self.repo
            .objects
            .set_pack_cache(move || Box::new(pack.clone()));
        self.blobs = Some(blobs);
        self
    }

    /// Keeps the raw commits `walk` reads in `commits` and decodes commits found there
    /// without reading them again: the walk reads only what ordering needs, the readers
    /// decode the rest, and inflating each commit twice cost ≈5% more instructions.
    pub fn with_commit_cache(mut self, commits: Arc<BlobCache>) -> Repo {
        self.commits = Some(commits);
        self
    }

    /// `owner/name` from `remote.origin.url` when it looks like a hosted repository.
    pub fn origin_name(&self) -> Option<String> {
        let url = self.repo.config_snapshot().string("remote.origin.url")?;
        let url = String::from_utf8_lossy(&url).into_owned();
        let url = url.trim_end_matches('/').trim_end_matches(".git");
        let mut parts = url.rsplit(['/', ':']);
        let name = parts.next()?;
        let owner = parts.next()?;
        (!name.is_empty() && !owner.is_empty()).then(|| format!("{owner}/{name}"))
    }

    /// `None` for a repository without commits.
    pub fn head(&self) -> Result<Option<ObjectId>> {
        match self.repo.head_id() {
            Ok(id) => Ok(Some(id.detach())),
            Err(e) => {
                // An unborn HEAD is the normal state of an empty repository.
                let unborn = self.repo.head().map(|h| h.is_unborn()).unwrap_or(false);
                if unborn {
                    Ok(None)
                } else {
                    Err(git_err("resolve HEAD")(e))
                }
            }
        }
    }

    fn raw(&self, id: &ObjectId, want: Kind, op: &'static str, buf: &mut Vec<u8>) -> Result<()> {
        let obj_err = |msg: String| Error::Object {
            id: id.to_string(),
            op,
            msg,
        };
        match self.repo.objects.try_find(id, buf) {
            Ok(Some(data)) if data.kind == want => Ok(()),
            Ok(Some(data)) => Err(obj_err(format!("expected a {want}, found a {}", data.kind))),
            Ok(None) => Err(obj_err("object is missing".into())),
            Err(e) => Err(obj_err(e.to_string())),
        }
    }

    pub fn commit(&self, id: ObjectId) -> Result<CommitInfo> {
        let mut pool = self.scratch.take();
        let mut s = pool.pop().unwrap_or_default();
        let r = self.decode_commit(id, &mut s.buf);
        pool.push(s);
        self.scratch.replace(pool);
        r
    }

    fn decode_commit(&self, id: ObjectId, buf: &mut Vec<u8>) -> Result<CommitInfo> {
        match self.commits.as_ref().and_then(|c| c.get(&id)) {
            Some(raw) => Self::parse_commit(id, &raw),
            None => {
                self.raw(&id, Kind::Commit, "read commit", buf)?;
                Self::parse_commit(id, buf)
            }
        }
    }

    fn parse_commit(id: ObjectId, buf: &[u8]) -> Result<CommitInfo> {
        let bad = |msg: String| Error::Object {
            id: id.to_string(),
            op: "decode commit",
            msg,
        };
        let c = gix::objs::CommitRef::from_bytes(buf, id.kind()).map_err(|e| bad(e.to_string()))?;
        let author = c.author().map_err(|e| bad(e.to_string()))?;
        let committer = c.committer().map_err(|e| bad(e.to_string()))?;
        Ok(CommitInfo {
            id,
            tree: c.tree(),
            parents: c.parents().collect(),
            author_name: String::from_utf8_lossy(author.name.trim_ascii()).into_owned(),
            author_email: String::from_utf8_lossy(author.email.trim_ascii()).into_owned(),
            author_time: author.seconds(),
            committer_time: committer.seconds(),
            message: String::from_utf8_lossy(c.message).into_owned(),
        })
    }

    pub fn blob(&self, id: ObjectId) -> Result<Vec<u8>> {
        if let Some(cache) = &self.blobs {
            if let Some(data) = cache.get(&id) {
                return Ok(data.to_vec());
            }
        }
        let mut buf = Vec::new();
        self.raw(&id, Kind::Blob, "read blob", &mut buf)?;
        if let Some(cache) = &self.blobs {
            cache.put(id, &buf);
        }
        Ok(buf)
    }

    /// Reads tree `id` into `buf` and its entries into `rows`, in git's tree order.
    fn read_tree(&self, id: ObjectId, buf: &mut Vec<u8>, rows: &mut Vec<Row>) -> Result<()> {
        self.raw(&id, Kind::Tree, "read tree", buf)?;
        parse_tree(&id, buf, rows)
    }

    /// Paths that differ between two trees (`None` = the empty tree). Subtrees with equal
    /// ids are skipped without being read, which is what makes long histories cheap.
    pub fn diff_trees(&self, old: Option<ObjectId>, new: Option<ObjectId>) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        self.diff_rec(old, new, &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    fn diff_rec(
        &self,
        old: Option<ObjectId>,
        new: Option<ObjectId>,
        prefix: &mut Vec<u8>,
        out: &mut Vec<Change>,
    ) -> Result<()> {
        if old == new {
            return Ok(());
        }
        // Walks diff each tree against its parent: one side was usually parsed just before.
        let side = |id: Option<ObjectId>| match id {
            Some(id) => self.cached_tree(id),
            None => Ok(Rc::new(Scratch::default())),
        };
        let (sa, sb) = (side(old)?, side(new)?);
        let (a, b) = (&sa.rows, &sb.rows);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => {
                    git_order(x.name(&sa.buf), x.is_tree, y.name(&sb.buf), y.is_tree)
                }
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let (x, y) = match ord {
                Ordering::Less => {
                    i += 1;
                    (Some(a[i - 1]), None)
                }
                Ordering::Greater => {
                    j += 1;
                    (None, Some(b[j - 1]))
                }
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                    (Some(a[i - 1]), Some(b[j - 1]))
                }
            };
            let (row, buf) = match x {
                Some(r) => (r, &sa.buf),
                None => (y.expect("one side present"), &sb.buf),
            };
            let len = prefix.len();
            prefix.extend_from_slice(row.name(buf));
            if row.is_tree {
                prefix.push(b'/');
                self.diff_rec(x.map(|e| e.id), y.map(|e| e.id), prefix, out)?;
            } else {
                let (old, new) = (x.and_then(|e| e.entry), y.and_then(|e| e.entry));
                if old != new {
                    out.push(Change {
                        old_path: prefix.clone(),
                        new_path: prefix.clone(),
                        old,
                        new,
                    });
                }
            }
            prefix.truncate(len);
        }
        Ok(())
    }

    /// Parsed tree `id`, from a small per-handle cache: the relevant-file search looks up
    /// several paths in the same base tree and its directories.
    fn cached_tree(&self, id: ObjectId) -> Result<Rc<Scratch>> {
        const KEEP: usize = 16;
        let mut trees = self.trees.borrow_mut();
        if let Some(pos) = trees.iter().position(|(t, _)| *t == id) {
            let hit = trees.remove(pos);
            let s = hit.1.clone();
            trees.push(hit);
            return Ok(s);
        }
        // The evicted tree's buffers are reused when no one else holds them.
        let mut s = if trees.len() == KEEP {
            Rc::try_unwrap(trees.remove(0).1).unwrap_or_default()
        } else {
            Scratch::default()
        };
        self.read_tree(id, &mut s.buf, &mut s.rows)?;
        let s = Rc::new(s);
        trees.push((id, s.clone()));
        Ok(s)
    }

    /// Walks `parts` down from `tree`; the last part must be a tree when `want_tree`.
    fn lookup(&self, tree: ObjectId, parts: &[&[u8]], want_tree: bool) -> Result<Option<Row>> {
        let mut cur = tree;
        for (n, part) in parts.iter().enumerate() {
            let s = self.cached_tree(cur)?;
            let last = n + 1 == parts.len();
            let tree_wanted = !last || want_tree;
            let hit = s
                .rows
                .iter()
                .find(|r| r.is_tree == tree_wanted && r.name(&s.buf) == *part)
                .copied();
            match hit {
                Some(r) if last => return Ok(Some(r)),
                Some(r) => cur = r.id,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The entry at `path` in `tree`, if any.
    pub fn entry_at(&self, tree: ObjectId, path: &[u8]) -> Result<Option<Entry>> {
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        Ok(self.lookup(tree, &parts, false)?.and_then(|r| r.entry))
    }

    /// All file paths (not trees) directly inside directory `dir` (`""` = root) of `tree`.
    pub fn list_dir(&self, tree: ObjectId, dir: &[u8]) -> Result<Vec<(Vec<u8>, Entry)>> {
        let cur = if dir.is_empty() {
            tree
        } else {
            let parts: Vec<&[u8]> = dir.split(|&b| b == b'/').collect();
            match self.lookup(tree, &parts, true)? {
                Some(r) => r.id,
                None => return Ok(Vec::new()),
            }
        };
        let s = self.cached_tree(cur)?;
        Ok(s.rows
            .iter()
            .filter_map(|r| {
                let entry = r.entry?;
                let mut p = dir.to_vec();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(r.name(&s.buf));
                Some((p, entry))
            })
            .collect())
    }

    pub fn merge_base(&self, a: ObjectId, b: ObjectId) -> Result<Option<ObjectId>> {
        let base = self.repo.merge_base(a, b).map_err(git_err("merge-base"))?;
        Ok(base.map(|id| id.detach()))
    }

    /// Commits reachable from `head` but not from `hidden`, newest first (`git log hidden..head`).
    pub fn range(&self, hidden: ObjectId, head: ObjectId) -> Result<Vec<ObjectId>> {
        let walk = self
            .repo
            .rev_walk([head])
            .with_hidden([hidden])
            .all()
            .map_err(git_err("rev-walk"))?;
        walk.map(|info| info.map(|i| i.id).map_err(git_err("rev-walk")))
            .collect()
    }

    /// The tree and parents of commit `id`, read without decoding its author or message
    /// (what the history walk needs of every commit; `parents` is cleared first).
    fn commit_links(
        &self,
        id: ObjectId,
        buf: &mut Vec<u8>,
        parents: &mut Vec<ObjectId>,
    ) -> Result<ObjectId> {
        use gix::objs::commit::ref_iter::Token;
        self.raw(&id, Kind::Commit, "read commit", buf)?;
        if let Some(c) = &self.commits {
            c.put(id, buf);
        }
        let bad = |msg: String| Error::Object {
            id: id.to_string(),
            op: "decode commit",
            msg,
        };
        let mut it = gix::objs::CommitRefIter::from_bytes(buf, id.kind());
        let tree = it.tree_id().map_err(|e| bad(e.to_string()))?;
        parents.clear();
        for token in it {
            match token.map_err(|e| bad(e.to_string()))? {
                Token::Parent { id } => parents.push(id),
                _ => break,
            }
        }
        Ok(tree)
    }

    /// Every commit reachable from `head`, newest first: breadth-first from `head` through
    /// all parents in order (gix's default walk; `all_commits` is its reverse). `None` when
    /// any commit cannot be read (shallow or damaged history).
    pub fn walk_links(&self, head: ObjectId) -> Option<Vec<WalkedCommit>> {
        let mut all = Vec::new();
        let ok = self.walk(head, &mut |batch| all.extend(batch));
        ok.then_some(all)
    }

    /// The walk of `walk_links`, handed to `batch` a few commits at a time as they are
    /// read, so that other threads can work on them while the walk goes on. `false` when
    /// a commit cannot be read.
    pub fn walk(&self, head: ObjectId, batch: &mut dyn FnMut(Vec<WalkedCommit>)) -> bool {
        const BATCH: usize = 64;
        // A breadth-first walk visits commits in the order it first sees them, so a
        // parent's position is known as soon as a child names it: the walk stores parents
        // as positions and needs this map only while it runs.
        let mut seen: HashMap<ObjectId, u32, BuildHasherDefault<IdHasher>> =
            [(head, 0)].into_iter().collect();
        let mut next = std::collections::VecDeque::from([head]);
        let mut out = Vec::with_capacity(BATCH);
        let (mut buf, mut parents) = (Vec::new(), Vec::new());
        while let Some(id) = next.pop_front() {
            let Ok(tree) = self.commit_links(id, &mut buf, &mut parents) else {
                return false;
            };
            let mut first_parent = NO_PARENT;
            for (n, &p) in parents.iter().enumerate() {
                let at = match seen.get(&p) {
                    Some(&at) => at,
                    None => {
                        let Ok(at) = u32::try_from(seen.len()) else {
                            return false;
                        };
                        if at == NO_PARENT {
                            return false;
                        }
                        seen.insert(p, at);
                        next.push_back(p);
                        at
                    }
                };
                if n == 0 {
                    first_parent = at;
                }
            }
            out.push(WalkedCommit {
                id,
                tree,
                first_parent,
            });
            if out.len() == BATCH {
                batch(std::mem::replace(&mut out, Vec::with_capacity(BATCH)));
            }
        }
        if !out.is_empty() {
            batch(out);
        }
        true
    }

    /// Every commit reachable from `head`, parents before children.
    pub fn all_commits(&self, head: ObjectId) -> Result<Vec<ObjectId>> {
        let walk = self
            .repo
            .rev_walk([head])
            .all()
            .map_err(git_err("rev-walk"))?;
        let mut ids: Vec<ObjectId> = walk
            .map(|info| info.map(|i| i.id).map_err(git_err("rev-walk")))
            .collect::<Result<_>>()?;
        ids.reverse();
        Ok(ids)
    }
}
