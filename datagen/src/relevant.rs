//! "Relevant but unmodified" files for the context (SWE-RL App. A): a model shown only the
//! files it must change learns to edit everything it sees.
//!
//! Heuristic, in order until K files are chosen:
//! 1. `co-change`: over a sliding window of the most recent earlier changes (default 2000
//!    commits/PRs, each of at most 100 files), score every other file by the number of
//!    changes it shared with any modified file; highest score first, ties by path.
//! 2. `import`: files in the same directory as a modified file where one names the other's
//!    file stem on an import-like line (`import`, `from`, `use`, `mod`, `#include`, `require`);
//!    the score counts both directions.
//!
//! Only text files that exist at the base commit, are not tests or noise and fit the size
//! limit qualify. The window bounds memory by its length, not by the history.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use gix::hash::ObjectId;

use crate::filter::FilterConfig;
use crate::git::{EntryKind, Repo};
use crate::instance::RelevantFile;
use crate::{diff, rules, Result};

const MAX_SET: usize = 100;

/// Multiplicative hashing for dense `u32` path ids and object ids (already uniformly
/// distributed): SipHash dominated the profile here.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Eight bytes per step: object ids (20 bytes) are the common key.
        let mut words = bytes.chunks_exact(8);
        for w in words.by_ref() {
            self.write_u64(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        for &b in words.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub struct Window {
    ids: HashMap<Vec<u8>, u32>,
    names: Vec<Vec<u8>>,
    /// (sequence number, path ids) of the remembered change sets, oldest first.
    sets: VecDeque<(u64, Vec<u32>)>,
    /// Per path id: sequence numbers of the sets containing it (stale ones pruned lazily).
    postings: Vec<VecDeque<u64>>,
    next_seq: u64,
    cap: usize,
    /// Per path id: its score in the running `candidates` call (zero between calls), and
    /// the ids scored; a hash map here was most of the window's cost on the walking thread.
    score: Vec<u32>,
    touched: Vec<u32>,
}

impl Window {
    pub fn new(cap: usize) -> Window {
        Window {
            ids: HashMap::new(),
            names: Vec::new(),
            sets: VecDeque::new(),
            postings: Vec::new(),
            next_seq: 0,
            cap,
            score: Vec::new(),
            touched: Vec::new(),
        }
    }

    fn id(&mut self, path: &[u8]) -> u32 {
        if let Some(&i) = self.ids.get(path) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(path.to_vec());
        self.ids.insert(path.to_vec(), i);
        self.postings.push(VecDeque::new());
        i
    }

    /// Records one change set (a commit or a PR); huge ones carry no co-change signal.
    pub fn push<'a>(&mut self, paths: impl IntoIterator<Item = &'a [u8]>) {
        let paths: Vec<&[u8]> = paths.into_iter().collect();
        if paths.len() < 2 || paths.len() > MAX_SET || self.cap == 0 {
            return;
        }
        let set: Vec<u32> = paths.into_iter().map(|p| self.id(p)).collect();
        let seq = self.next_seq;
        self.next_seq += 1;
        for &i in &set {
            let post = &mut self.postings[i as usize];
            // Drop stale entries here too so memory stays bounded by the window.
            while post.front().is_some_and(|&s| s + self.cap as u64 <= seq) {
                post.pop_front();
            }
            post.push_back(seq);
        }
        if self.sets.len() == self.cap {
            self.sets.pop_front();
        }
        self.sets.push_back((seq, set));
    }

    /// Up to `n` unmodified paths that changed together with `modified`, best first.
    pub fn candidates<'a>(
        &mut self,
        modified: impl IntoIterator<Item = &'a [u8]>,
        n: usize,
    ) -> Vec<(Vec<u8>, u32)> {
        let m: Vec<u32> = modified
            .into_iter()
            .filter_map(|p| self.ids.get(p).copied())
            .collect();
        let Some(&(oldest, _)) = self.sets.front() else {
            return Vec::new();
        };
        if m.is_empty() || n == 0 {
            return Vec::new();
        }
        // Sets that contain any modified path, each once.
        let mut hits: Vec<u64> = m
            .iter()
            .flat_map(|&i| {
                self.postings[i as usize]
                    .iter()
                    .copied()
                    .filter(|&s| s >= oldest)
            })
            .collect();
        hits.sort_unstable();
        hits.dedup();
        self.score.resize(self.names.len(), 0);
        for seq in hits {
            let set = &self.sets[(seq - oldest) as usize].1;
            for &i in set.iter().filter(|i| !m.contains(i)) {
                let s = &mut self.score[i as usize];
                if *s == 0 {
                    self.touched.push(i);
                }
                *s += 1;
            }
        }
        let mut ranked: Vec<(u32, u32)> = Vec::with_capacity(self.touched.len());
        for i in self.touched.drain(..) {
            ranked.push((i, std::mem::take(&mut self.score[i as usize])));
        }
        let by_rank = |a: &(u32, u32), b: &(u32, u32)| {
            b.1.cmp(&a.1)
                .then_with(|| self.names[a.0 as usize].cmp(&self.names[b.0 as usize]))
        };
        // Only the best `n` are named (cloned); ranking all of them by reference is cheap.
        if ranked.len() > n {
            ranked.select_nth_unstable_by(n - 1, by_rank);
            ranked.truncate(n);
        }
        ranked.sort_unstable_by(by_rank);
        ranked
            .into_iter()
            .map(|(i, s)| (self.names[i as usize].clone(), s))
            .collect()
    }
}

/// Text of a file at `tree` if it may be put into the context.
fn eligible(
    repo: &Repo,
    tree: ObjectId,
    path: &[u8],
    cfg: &FilterConfig,
) -> Result<Option<(String, String)>> {
    let Ok(path_s) = std::str::from_utf8(path) else {
        return Ok(None);
    };
    if diff::is_test_path(path_s) || rules::noise_kind(path_s).is_some() {
        return Ok(None);
    }
    let Some(entry) = repo.entry_at(tree, path)? else {
        return Ok(None);
    };
    if !matches!(entry.kind, EntryKind::File | EntryKind::Executable) {
        return Ok(None);
    }
    let data = repo.blob(entry.id)?;
    if data.len() > cfg.max_file_bytes || diff::is_binary(&data) {
        return Ok(None);
    }
    Ok(String::from_utf8(data)
        .ok()
        .map(|t| (path_s.to_string(), t)))
}

fn stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.split('.').next().unwrap_or(name)
}

/// For every identifier: the number of import-like lines of `text` naming it as a whole
/// word. Built once per text; scoring each sibling by re-scanning both texts dominated
/// the miner's profile.
fn import_words(text: &str) -> HashMap<String, u32> {
    let mut words: HashMap<String, u32> = HashMap::new();
    let mut line_words: Vec<&str> = Vec::new();
    // Searched per line only when the text has them at all (most texts have neither).
    let calls = text.contains("require(") || text.contains("import(");
    if calls {
        for l in text.lines() {
            count_import_line(l, true, &mut words, &mut line_words);
        }
        return words;
    }
    // Otherwise only lines whose first non-blank byte may start a keyword can count, and
    // finding line starts sixteen bytes at a time skips the rest cheaply. A trailing
    // `\r` (which `lines` drops) changes neither the keyword test nor the words.
    let b = text.as_bytes();
    let mut start = 0;
    let mut line = |end: usize| {
        let first = b[start..end]
            .iter()
            .find(|&&c| !matches!(c, b' ' | b'\t'..=b'\r'));
        // Non-ASCII: `trim_start` may skip Unicode blanks, so take the exact path.
        if matches!(
            first,
            Some(b'i' | b'f' | b'u' | b'm' | b'p' | b'#' | 0x80..)
        ) {
            // `start` follows a '\n' and `end` is one or the end: both char boundaries.
            count_import_line(&text[start..end], false, &mut words, &mut line_words);
        }
        start = end + 1;
    };
    crate::bytescan::for_each_eq(b, b'\n', &mut line);
    line(b.len());
    words
}

/// Counts the identifiers of `l` (once each) when it is an import-like line.
fn count_import_line<'a>(
    l: &'a str,
    calls: bool,
    words: &mut HashMap<String, u32>,
    line_words: &mut Vec<&'a str>,
) {
    let t = l.trim_start();
    let keyword_first = matches!(
        t.as_bytes().first(),
        Some(b'i' | b'f' | b'u' | b'm' | b'p' | b'#')
    );
    let import_like = keyword_first
        && [
            "import ", "from ", "use ", "mod ", "pub mod ", "pub use ", "#include",
        ]
        .iter()
        .any(|k| t.starts_with(k))
        || calls && (t.contains("require(") || t.contains("import("));
    if !import_like {
        return;
    }
    line_words.clear();
    line_words.extend(
        t.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty()),
    );
    line_words.sort_unstable();
    line_words.dedup();
    for w in line_words.iter() {
        *words.entry((*w).to_string()).or_default() += 1;
    }
}

/// Number of import-like lines of `text` that name `target` as a whole identifier.
#[cfg(test)]
fn imports(text: &str, target: &str) -> u32 {
    import_words(text).get(target).copied().unwrap_or(0)
}

/// The relevant files for one unit, with their content at the base commit.
pub fn choose(
    repo: &Repo,
    base_tree: ObjectId,
    cochange: &[(Vec<u8>, u32)],
    modified: &HashSet<Vec<u8>>,
    code_context: &BTreeMap<String, String>,
    cfg: &FilterConfig,
) -> Result<Vec<(RelevantFile, String)>> {
    let k = cfg.relevant_k;
    let mut out: Vec<(RelevantFile, String)> = Vec::new();
    for (path, score) in cochange {
        if out.len() >= k {
            return Ok(out);
        }
        if modified.contains(path) {
            continue;
        }
        if let Some((p, text)) = eligible(repo, base_tree, path, cfg)? {
            out.push((
                RelevantFile {
                    path: p,
                    method: "co-change".into(),
                    score: *score,
                },
                text,
            ));
        }
    }
    if out.len() >= k {
        return Ok(out);
    }
    let mut scored: Vec<(u32, String, String)> = Vec::new();
    let mut seen: HashSet<String> = out.iter().map(|(r, _)| r.path.clone()).collect();
    // Siblings are shared by modified files in one directory: read and index each once.
    type Sibling = Option<(String, String, HashMap<String, u32>)>;
    let mut siblings_seen: HashMap<Vec<u8>, Sibling> = HashMap::new();
    let count = |words: &HashMap<String, u32>, target: &str| -> u32 {
        words.get(target).copied().unwrap_or(0)
    };
    for (mpath, mtext) in code_context {
        let mwords = import_words(mtext);
        let dir = mpath.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let siblings = repo.list_dir(base_tree, dir.as_bytes())?;
        for (spath, _) in siblings.into_iter().take(200) {
            if modified.contains(&spath) {
                continue;
            }
            let sib = match siblings_seen.entry(spath) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    let found = eligible(repo, base_tree, v.key(), cfg)?.map(|(p, t)| {
                        let w = import_words(&t);
                        (p, t, w)
                    });
                    v.insert(found)
                }
            };
            let Some((sp, stext, swords)) = sib else {
                continue;
            };
            if seen.contains(sp.as_str()) {
                continue;
            }
            let score = count(&mwords, stem(sp)) + count(swords, stem(mpath));
            if score > 0 {
                seen.insert(sp.clone());
                scored.push((score, sp.clone(), stext.clone()));
            }
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (score, path, text) in scored.into_iter().take(k - out.len()) {
        out.push((
            RelevantFile {
                path,
                method: "import".into(),
                score,
            },
            text,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line-start shortcut against the exact per-line path, on awkward blanks.
    #[test]
    fn import_scan_shortcut_matches_every_line_path() {
        let text = "import os\r\n  from a.b import c\n\u{a0}use x::y;\n\u{b}mod m;\n\
                    \tpub use p::q; // q\nfoo import bar\n#include <z.h>\nimp\nx\n\
                    \u{2003}import w\n\u{1c}import v\nuse last";
        let mut want: HashMap<String, u32> = HashMap::new();
        let mut scratch = Vec::new();
        for l in text.lines() {
            count_import_line(l, false, &mut want, &mut scratch);
        }
        assert_eq!(import_words(text), want);
        assert_eq!(want.get("w"), Some(&1));
        assert_eq!(want.get("v"), None);
    }

    #[test]
    fn window_scores_co_changes() {
        let mut w = Window::new(3);
        w.push([b"a.py".as_slice(), b"b.py"]);
        w.push([b"a.py".as_slice(), b"b.py", b"c.py"]);
        w.push([b"x.py".as_slice(), b"y.py"]);
        let c = w.candidates([b"a.py".as_slice()], 5);
        assert_eq!(c, vec![(b"b.py".to_vec(), 2), (b"c.py".to_vec(), 1)]);
        // The oldest set falls out of a full window.
        w.push([b"x.py".as_slice(), b"z.py"]);
        assert_eq!(
            w.candidates([b"a.py".as_slice()], 5),
            vec![(b"b.py".to_vec(), 1), (b"c.py".to_vec(), 1)]
        );
    }

    /// The scoring shortcut (dense per-id scores) against a plain recount over the window.
    #[test]
    fn window_candidates_match_a_plain_recount() {
        let cap = 7;
        let mut w = Window::new(cap);
        let mut sets: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut x: u64 = 12345;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        for _ in 0..60 {
            let set: Vec<Vec<u8>> = (0..2 + next(4))
                .map(|_| format!("f{}.py", next(12)).into_bytes())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let modified = [format!("f{}.py", next(12)).into_bytes()];
            let mut want: HashMap<Vec<u8>, u32> = HashMap::new();
            for s in sets.iter().rev().take(cap) {
                if s.contains(&modified[0]) {
                    for p in s.iter().filter(|p| **p != modified[0]) {
                        *want.entry(p.clone()).or_default() += 1;
                    }
                }
            }
            let mut want: Vec<(Vec<u8>, u32)> = want.into_iter().collect();
            want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(4);
            let got = w.candidates(modified.iter().map(|p| p.as_slice()), 4);
            assert_eq!(got, want);
            if set.len() >= 2 {
                w.push(set.iter().map(|p| p.as_slice()));
                sets.push(set);
            }
        }
    }

    #[test]
    fn import_lines() {
        assert_eq!(
            imports("from .utils import helper\nx = utils\n", "utils"),
            1
        );
        assert_eq!(imports("use crate::parser;\n", "parser"), 1);
        assert_eq!(imports("import os\n", "utils"), 0);
    }
}
