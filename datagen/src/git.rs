//! Thin layer over `gix`: commits, trees and blobs as plain data, tree diffs that skip
//! unchanged subtrees by object id, merge bases and ranges. All git access of the miner
//! goes through here.

use std::path::{Path, PathBuf};

use gix::hash::ObjectId;
use gix::objs::{Find, Kind};

use crate::error::{Error, Result};

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

/// A tree entry: name, is-a-tree, file entry (None for trees), object id.
type TreeRow = (Vec<u8>, bool, Option<Entry>, ObjectId);

pub struct Repo {
    repo: gix::Repository,
    pub path: PathBuf,
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
        })
    }

    /// A handle usable on another thread (each thread keeps its own object caches).
    pub fn share(&self) -> gix::ThreadSafeRepository {
        self.repo.clone().into_sync()
    }

    pub fn from_shared(shared: &gix::ThreadSafeRepository, path: &Path) -> Repo {
        let mut repo = shared.to_thread_local();
        repo.object_cache_size_if_unset(64 << 20);
        Repo {
            repo,
            path: path.to_owned(),
        }
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
        let mut buf = Vec::new();
        self.raw(&id, Kind::Commit, "read commit", &mut buf)?;
        let bad = |msg: String| Error::Object {
            id: id.to_string(),
            op: "decode commit",
            msg,
        };
        let c =
            gix::objs::CommitRef::from_bytes(&buf, id.kind()).map_err(|e| bad(e.to_string()))?;
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
        let mut buf = Vec::new();
        self.raw(&id, Kind::Blob, "read blob", &mut buf)?;
        Ok(buf)
    }

    fn tree_entries(&self, id: ObjectId, buf: &mut Vec<u8>) -> Result<Vec<TreeRow>> {
        self.raw(&id, Kind::Tree, "read tree", buf)?;
        let tree = gix::objs::TreeRef::from_bytes(buf, id.kind()).map_err(|e| Error::Object {
            id: id.to_string(),
            op: "decode tree",
            msg: e.to_string(),
        })?;
        let mut out: Vec<_> = tree
            .entries
            .iter()
            .map(|e| {
                let oid = e.oid.to_owned();
                let is_tree = e.mode.is_tree();
                let kind = if is_tree {
                    None
                } else if e.mode.is_commit() {
                    Some(EntryKind::Submodule)
                } else if e.mode.is_link() {
                    Some(EntryKind::Symlink)
                } else if e.mode.is_executable() {
                    Some(EntryKind::Executable)
                } else {
                    Some(EntryKind::File)
                };
                (
                    e.filename.to_vec(),
                    is_tree,
                    kind.map(|kind| Entry { id: oid, kind }),
                    oid,
                )
            })
            .collect();
        // Merge-join below needs one order for both sides; do not trust the stored order.
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(out)
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
        let mut buf = Vec::new();
        let a = match old {
            Some(id) => self.tree_entries(id, &mut buf)?,
            None => Vec::new(),
        };
        let b = match new {
            Some(id) => self.tree_entries(id, &mut buf)?,
            None => Vec::new(),
        };
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => (&x.0, x.1).cmp(&(&y.0, y.1)),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (x, y) = match ord {
                std::cmp::Ordering::Less => {
                    i += 1;
                    (Some(&a[i - 1]), None)
                }
                std::cmp::Ordering::Greater => {
                    j += 1;
                    (None, Some(&b[j - 1]))
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                    (Some(&a[i - 1]), Some(&b[j - 1]))
                }
            };
            let name = &x.or(y).expect("one side present").0;
            let len = prefix.len();
            prefix.extend_from_slice(name);
            let is_tree = x.or(y).expect("one side present").1;
            if is_tree {
                prefix.push(b'/');
                self.diff_rec(x.map(|e| e.3), y.map(|e| e.3), prefix, out)?;
            } else {
                let (old, new) = (x.and_then(|e| e.2), y.and_then(|e| e.2));
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

    /// The entry at `path` in `tree`, if any.
    pub fn entry_at(&self, tree: ObjectId, path: &[u8]) -> Result<Option<Entry>> {
        let mut cur = tree;
        let mut buf = Vec::new();
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        for (n, part) in parts.iter().enumerate() {
            let entries = self.tree_entries(cur, &mut buf)?;
            let last = n + 1 == parts.len();
            let hit = entries.iter().find(|e| e.0 == *part && e.1 != last);
            match hit {
                Some(e) if last => return Ok(e.2),
                Some(e) => cur = e.3,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// All file paths (not trees) directly inside directory `dir` (`""` = root) of `tree`.
    pub fn list_dir(&self, tree: ObjectId, dir: &[u8]) -> Result<Vec<(Vec<u8>, Entry)>> {
        let mut cur = tree;
        let mut buf = Vec::new();
        if !dir.is_empty() {
            for part in dir.split(|&b| b == b'/') {
                let entries = self.tree_entries(cur, &mut buf)?;
                match entries.iter().find(|e| e.0 == part && e.1) {
                    Some(e) => cur = e.3,
                    None => return Ok(Vec::new()),
                }
            }
        }
        let entries = self.tree_entries(cur, &mut buf)?;
        Ok(entries
            .into_iter()
            .filter_map(|(name, _, entry, _)| {
                let entry = entry?;
                let mut p = dir.to_vec();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(&name);
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
