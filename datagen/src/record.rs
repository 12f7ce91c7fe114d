//! The JSON record of an `Instance`, written by hand: byte-identical to
//! `serde_json::to_vec(&instance)` (a test holds it to that), but escaping strings sixteen
//! bytes at a time. Records are mostly file contents, and serde_json's byte-at-a-time
//! escaping was the largest single cost of `swerl mine` after the git work.

use std::collections::BTreeMap;
use std::io::Write;

use crate::instance::{Instance, RelevantFile, Stats, UnitKind};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bit `k` set when byte `k` of `chunk` must be escaped (a control character, `"` or `\\`).
/// Exact for every bit, so a chunk's escapes are handled without rescanning it.
#[cfg(target_arch = "x86_64")]
fn escape_mask(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let v: __m128i = bytemuck::cast(*chunk);
    // SAFETY: SSE2 is part of the x86_64 baseline (every x86_64 CPU has it), and these
    // intrinsics only compute on register values.
    unsafe {
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn escape_mask(chunk: &[u8; 16]) -> u32 {
    chunk
        .iter()
        .enumerate()
        .filter(|(_, &c)| needs_escape(c))
        .fold(0, |m, (k, _)| m | 1 << k)
}

#[cfg(not(target_arch = "x86_64"))]
fn needs_escape(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// serde_json's escape of byte `b` (< 0x60): its length and bytes; length 0 = no escape.
const fn escape_of(b: u8) -> (usize, [u8; 8]) {
    const fn two(c: u8) -> (usize, [u8; 8]) {
        (2, [b'\\', c, 0, 0, 0, 0, 0, 0])
    }
    match b {
        b'"' => two(b'"'),
        b'\\' => two(b'\\'),
        b'\n' => two(b'n'),
        b'\r' => two(b'r'),
        b'\t' => two(b't'),
        0x08 => two(b'b'),
        0x0c => two(b'f'),
        b if b < 0x20 => (
            6,
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
                0,
                0,
            ],
        ),
        _ => (0, [0; 8]),
    }
}

const ESCAPES: [(usize, [u8; 8]); 0x60] = {
    let mut t = [(0, [0; 8]); 0x60];
    let mut b = 0;
    while b < 0x60 {
        t[b] = escape_of(b as u8);
        b += 1;
    }
    t
};

/// Bytes escaped per step; a block's escapes are one `u64` mask.
const BLOCK: usize = 64;

/// Escape mask of the first `BLOCK` bytes of `data`.
fn block_mask(data: &[u8]) -> u64 {
    (0..BLOCK / 16).fold(0, |m, k| {
        let chunk: &[u8; 16] = data[k * 16..k * 16 + 16].try_into().expect("16 bytes");
        m | u64::from(escape_mask(chunk)) << (k * 16)
    })
}

/// Appends the escaped form of `data[..len]` (`len` ≤ `BLOCK`), whose escape mask is `m`.
/// Runs are copied with fixed 16-byte stores into reserved room (the 16 bytes of slack in
/// `data` and in the reservation absorb the overshoot): variable-length `memcpy` calls,
/// one per line of code, were most of this function's cost.
fn escape_block(out: &mut Vec<u8>, data: &[u8; BLOCK + 16], len: usize, mut m: u64) {
    debug_assert!(len <= BLOCK);
    // Worst case: every byte a six-byte escape, plus the overshoot of the last store.
    out.reserve(BLOCK * 6 + 16);
    let base = out.len();
    let (mut dst, mut src) = (0, 0);
    // SAFETY: reads stay below `len + 16 <= data.len()`; writes below `dst + 16` where the
    // kept length `dst` is at most `6 * len`, inside the reservation past `base`. Only
    // initialised `u8`s are stored, and `set_len` covers exactly the kept bytes.
    unsafe {
        let p = out.as_mut_ptr().add(base);
        let run = |src: usize, dst: usize, n: usize| {
            let mut k = 0;
            while k < n {
                std::ptr::copy_nonoverlapping(data.as_ptr().add(src + k), p.add(dst + k), 16);
                k += 16;
            }
        };
        while m != 0 {
            let at = m.trailing_zeros() as usize;
            run(src, dst, at - src);
            dst += at - src;
            let (n, esc) = ESCAPES[data[at] as usize];
            std::ptr::copy_nonoverlapping(esc.as_ptr(), p.add(dst), 8);
            dst += n;
            src = at + 1;
            m &= m - 1;
        }
        run(src, dst, len - src);
        dst += len - src;
        out.set_len(base + dst);
    }
}

/// `s` as a JSON string literal, escaped exactly as serde_json does.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // Code has a newline every few dozen bytes; room for those up front.
    out.reserve(b.len() + b.len() / 16 + 2);
    out.push(b'"');
    let mut data = [0u8; BLOCK + 16];
    let mut blocks = b.chunks_exact(BLOCK);
    for block in blocks.by_ref() {
        match block_mask(block) {
            0 => out.extend_from_slice(block),
            m => {
                data[..BLOCK].copy_from_slice(block);
                escape_block(out, &data, BLOCK, m);
            }
        }
    }
    let tail = blocks.remainder();
    data = [0u8; BLOCK + 16];
    data[..tail.len()].copy_from_slice(tail);
    // The zero padding reads as control characters: only the tail's own bits count.
    let m = block_mask(&data) & ((1u64 << tail.len()) - 1);
    escape_block(out, &data, tail.len(), m);
    out.push(b'"');
}

fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    string(out, name);
    out.push(b':');
}

fn num(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

fn list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (n, x) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        each(out, x);
    }
    out.push(b']');
}

fn map(out: &mut Vec<u8>, m: &BTreeMap<String, String>) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in m {
        key(out, &mut first, k);
        string(out, v);
    }
    out.push(b'}');
}

fn relevant(out: &mut Vec<u8>, r: &RelevantFile) {
    let RelevantFile {
        path,
        method,
        score,
    } = r;
    let f = &mut true;
    out.push(b'{');
    key(out, f, "path");
    string(out, path);
    key(out, f, "method");
    string(out, method);
    key(out, f, "score");
    num(out, score);
    out.push(b'}');
}

fn stats(out: &mut Vec<u8>, s: &Stats) {
    // Destructured so that a new field is a compile error here, not a silent omission.
    let Stats {
        files_changed,
        code_files,
        test_files,
        lines_added,
        lines_removed,
        renames,
        skipped_binary,
        skipped_symlink,
        skipped_submodule,
        commits,
    } = s;
    let f = &mut true;
    out.push(b'{');
    for (name, v) in [
        ("files_changed", files_changed),
        ("code_files", code_files),
        ("test_files", test_files),
        ("lines_added", lines_added),
        ("lines_removed", lines_removed),
        ("renames", renames),
        ("skipped_binary", skipped_binary),
        ("skipped_symlink", skipped_symlink),
        ("skipped_submodule", skipped_submodule),
        ("commits", commits),
    ] {
        key(out, f, name);
        num(out, v);
    }
    out.push(b'}');
}

/// Appends the record of `inst` to `out`.
pub fn write_instance(out: &mut Vec<u8>, inst: &Instance) {
    let Instance {
        id,
        repo,
        pr_number,
        kind,
        base_commit,
        merge_commit,
        head_commit,
        commits,
        created_at,
        author,
        title,
        body,
        problem_statement,
        hints,
        linked_issues,
        code_context,
        oracle_new_content,
        oracle_patch,
        test_patch,
        relevant_files,
        stats: st,
    } = inst;
    let f = &mut true;
    out.push(b'{');
    key(out, f, "id");
    string(out, id);
    key(out, f, "repo");
    string(out, repo);
    key(out, f, "pr_number");
    match pr_number {
        Some(n) => num(out, n),
        None => out.extend_from_slice(b"null"),
    }
    key(out, f, "kind");
    string(
        out,
        match kind {
            UnitKind::Merge => "merge",
            UnitKind::Squash => "squash",
            UnitKind::Commit => "commit",
            UnitKind::Swebench => "swebench",
        },
    );
    for (name, v) in [
        ("base_commit", base_commit),
        ("merge_commit", merge_commit),
        ("head_commit", head_commit),
    ] {
        key(out, f, name);
        string(out, v);
    }
    key(out, f, "commits");
    list(out, commits, |out, c| string(out, c));
    for (name, v) in [
        ("created_at", created_at),
        ("author", author),
        ("title", title),
        ("body", body),
        ("problem_statement", problem_statement),
        ("hints", hints),
    ] {
        key(out, f, name);
        string(out, v);
    }
    key(out, f, "linked_issues");
    list(out, linked_issues, |out, i| num(out, i));
    key(out, f, "code_context");
    map(out, code_context);
    key(out, f, "oracle_new_content");
    map(out, oracle_new_content);
    key(out, f, "oracle_patch");
    string(out, oracle_patch);
    key(out, f, "test_patch");
    string(out, test_patch);
    key(out, f, "relevant_files");
    list(out, relevant_files, relevant);
    key(out, f, "stats");
    stats(out, st);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain ascii text, longer than eight bytes".into(),
            "quote \" backslash \\ newline \n tab \t cr \r bs \u{8} ff \u{c}".into(),
            "\u{0}\u{1}\u{1f}\u{7f} del and nul".into(),
            "ünïcödé → 漢字 😀 \"mixed\"\n".into(),
        ];
        // Every byte value below 0x80 at every offset of a 16-byte window.
        for b in 0u8..0x80 {
            for at in 0..16 {
                let mut s = vec![b'x'; 16];
                s[at] = b;
                cases.push(String::from_utf8(s).unwrap());
            }
        }
        // Escapes in the tail (shorter than 16 bytes) and across chunk boundaries.
        for len in 0..140 {
            for at in 0..len {
                let mut s = vec![b'y'; len];
                s[at] = [b'\n', b'"', 0x01, b'\\'][at % 4];
                cases.push(String::from_utf8(s).unwrap());
            }
        }
        for s in &cases {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn instance_record_equals_serde_json() {
        let text = |s: &str| format!("{s} \"q\"\n\tline\\2\n\u{1}é");
        let inst = Instance {
            id: text("id"),
            repo: "o/r".into(),
            pr_number: Some(12),
            kind: UnitKind::Squash,
            base_commit: "a".repeat(40),
            merge_commit: "b".repeat(40),
            head_commit: "c".repeat(40),
            commits: vec!["d".into(), "e".into()],
            created_at: "2023-11-14T22:13:20Z".into(),
            author: text("author"),
            title: text("title"),
            body: text("body"),
            problem_statement: text("ps"),
            hints: text("hints"),
            linked_issues: vec![3, 4],
            code_context: [("a.py".to_string(), text("a")), (text("k"), text("b"))].into(),
            oracle_new_content: [("a.py".to_string(), text("new"))].into(),
            oracle_patch: text("patch"),
            test_patch: String::new(),
            relevant_files: vec![
                RelevantFile {
                    path: "b.py".into(),
                    method: "co-change".into(),
                    score: 7,
                },
                RelevantFile {
                    path: text("c"),
                    method: "import".into(),
                    score: 1,
                },
            ],
            stats: Stats {
                files_changed: 1,
                code_files: 2,
                test_files: 3,
                lines_added: 4,
                lines_removed: 5,
                renames: 6,
                skipped_binary: 7,
                skipped_symlink: 8,
                skipped_submodule: 9,
                commits: 10,
            },
        };
        for (pr, kind) in [
            (Some(12), UnitKind::Merge),
            (None, UnitKind::Commit),
            (None, UnitKind::Swebench),
            (Some(1), UnitKind::Squash),
        ] {
            let mut i = inst.clone();
            i.pr_number = pr;
            i.kind = kind;
            if pr.is_none() {
                i.relevant_files.clear();
                i.commits.clear();
                i.linked_issues.clear();
            }
            let mut out = Vec::new();
            write_instance(&mut out, &i);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&i).unwrap()
            );
        }
    }
}
