//! The JSON record of an `Instance`, written by hand: byte-identical to
//! `serde_json::to_vec(&instance)` (a test holds it to that), but escaping strings eight
//! bytes at a time. Records are mostly file contents, and serde_json's byte-at-a-time
//! escaping was the largest single cost of `swerl mine` after the git work.

use std::collections::BTreeMap;
use std::io::Write;

use crate::instance::{Instance, RelevantFile, Stats, UnitKind};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// High bit set in each byte of `w` (little-endian lanes) that is a control character,
/// `"` or `\\`. Borrows can mark bytes above a true match, never below one, so the
/// lowest set bit is exact.
fn escape_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    // Below 0x20; bytes >= 0x80 (UTF-8 sequences) are masked out by `!w`.
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))
}

fn escape_byte(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        b if b < 0x20 => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(b >> 4) as usize],
            HEX[(b & 15) as usize],
        ]),
        b => out.push(b),
    }
}

/// `s` as a JSON string literal, escaped exactly as serde_json does.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0; // first byte not yet copied
    let mut i = 0;
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let m = escape_mask(w);
        if m == 0 {
            i += 8;
            continue;
        }
        let at = i + (m.trailing_zeros() / 8) as usize;
        out.extend_from_slice(&b[start..at]);
        escape_byte(out, b[at]);
        start = at + 1;
        i = at + 1;
    }
    for (at, &c) in b.iter().enumerate().skip(i) {
        if c < 0x20 || c == b'"' || c == b'\\' {
            out.extend_from_slice(&b[start..at]);
            escape_byte(out, c);
            start = at + 1;
        }
    }
    out.extend_from_slice(&b[start..]);
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
    out.push(b'[');
    for (n, c) in commits.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        string(out, c);
    }
    out.push(b']');
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
    out.push(b'[');
    for (n, i) in linked_issues.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        num(out, i);
    }
    out.push(b']');
    key(out, f, "code_context");
    map(out, code_context);
    key(out, f, "oracle_new_content");
    map(out, oracle_new_content);
    key(out, f, "oracle_patch");
    string(out, oracle_patch);
    key(out, f, "test_patch");
    string(out, test_patch);
    key(out, f, "relevant_files");
    out.push(b'[');
    for (n, r) in relevant_files.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        relevant(out, r);
    }
    out.push(b']');
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
