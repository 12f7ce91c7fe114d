//! Git-style unified diffs (`diff --git`, `---/+++`, `@@` hunks) that `git apply` accepts,
//! the SWE-bench test/fix split, and the whitespace-normalised patch hash used for dedup.

use std::fmt::Write;

use similar::{ChangeTag, TextDiff};

/// git's own rule: a NUL byte in the first 8000 bytes means binary.
pub fn is_binary(data: &[u8]) -> bool {
    crate::bytescan::contains(&data[..data.len().min(8000)], 0)
}

/// SWE-bench (`extract_patches`) sends a file to `test_patch` when its path contains one of
/// `test`, `tests`, `e2e`, `testing` as a substring; `test` subsumes two of them.
pub fn is_test_path(path: &str) -> bool {
    path.contains("test") || path.contains("e2e")
}

/// One side of a file change.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    pub path: &'a str,
    pub mode: &'a str,
    pub id: &'a str,
    pub text: &'a str,
}

/// Line counts of one file's diff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineCounts {
    pub added: usize,
    pub removed: usize,
}

fn abbrev(id: &str) -> &str {
    &id[..id.len().min(7)]
}

/// The patch of one file. `similarity` marks a rename (percent, as git prints it).
pub fn file_patch(
    old: Option<Side<'_>>,
    new: Option<Side<'_>>,
    similarity: Option<u32>,
) -> (String, LineCounts) {
    let old_text = old.map(|s| s.text).unwrap_or("");
    let new_text = new.map(|s| s.text).unwrap_or("");
    // Built with `push_str` (the formatting machinery was a visible cost), sized for the
    // headers plus the hunks of a small edit.
    let mut out = String::with_capacity(256 + (old_text.len() + new_text.len()) / 4);
    let old_path = old.or(new).map(|s| s.path).unwrap_or_default();
    let new_path = new.or(old).map(|s| s.path).unwrap_or_default();
    let line = |out: &mut String, parts: &[&str]| {
        parts.iter().for_each(|p| out.push_str(p));
        out.push('\n');
    };
    line(&mut out, &["diff --git a/", old_path, " b/", new_path]);
    const ZERO: &str = "0000000";
    match (old, new) {
        (None, Some(n)) => {
            line(&mut out, &["new file mode ", n.mode]);
            line(&mut out, &["index ", ZERO, "..", abbrev(n.id)]);
        }
        (Some(o), None) => {
            line(&mut out, &["deleted file mode ", o.mode]);
            line(&mut out, &["index ", abbrev(o.id), "..", ZERO]);
        }
        (Some(o), Some(n)) => {
            if o.mode != n.mode {
                line(&mut out, &["old mode ", o.mode]);
                line(&mut out, &["new mode ", n.mode]);
            }
            if let Some(sim) = similarity {
                line(&mut out, &["similarity index ", &sim.to_string(), "%"]);
                line(&mut out, &["rename from ", o.path]);
                line(&mut out, &["rename to ", n.path]);
            }
            if o.id != n.id {
                let mode = if o.mode == n.mode { n.mode } else { "" };
                let sep = if mode.is_empty() { "" } else { " " };
                line(
                    &mut out,
                    &["index ", abbrev(o.id), "..", abbrev(n.id), sep, mode],
                );
            }
        }
        (None, None) => return (String::new(), LineCounts::default()),
    }
    if old_text == new_text {
        // Pure renames and mode changes carry no hunks, exactly like git's output.
        return (out, LineCounts::default());
    }
    match old {
        Some(o) => line(&mut out, &["--- a/", o.path]),
        None => line(&mut out, &["--- /dev/null"]),
    }
    match new {
        Some(n) => line(&mut out, &["+++ b/", n.path]),
        None => line(&mut out, &["+++ /dev/null"]),
    }
    let counts = write_hunks(&mut out, old_text, new_text);
    (out, counts)
}

/// Start of the last line of `t[..end]` (`end` > 0; a final line may lack its newline).
fn last_line_start(t: &[u8], end: usize) -> usize {
    t[..end - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

/// Bytes taken by the last `n` lines of `t`.
fn tail_lines_len(t: &str, n: usize) -> usize {
    let mut i = t.len();
    for _ in 0..n {
        if i == 0 {
            break;
        }
        i = last_line_start(t.as_bytes(), i);
    }
    t.len() - i
}

/// Common leading and trailing whole lines of `a` and `b`, never overlapping: the byte
/// offset just past each common leading line, and the number of common trailing lines.
fn common_lines(a: &str, b: &str) -> (Vec<usize>, usize) {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    // A leading line is common exactly when its '\n' lies before the first differing
    // byte; found sixteen bytes at a time rather than line by line.
    let same = ab
        .chunks_exact(16)
        .zip(bb.chunks_exact(16))
        .take_while(|(x, y)| x == y)
        .count()
        * 16;
    let diverge = same
        + ab[same..]
            .iter()
            .zip(&bb[same..])
            .take_while(|(x, y)| x == y)
            .count();
    let mut pre_ends = Vec::with_capacity(diverge / 32 + 1);
    crate::bytescan::for_each_eq(&ab[..diverge], b'\n', |i| pre_ends.push(i + 1));
    let pre_bytes = pre_ends.last().copied().unwrap_or(0);
    let (ra, rb) = (&ab[pre_bytes..], &bb[pre_bytes..]);
    let mut suf_lines = 0;
    let (mut ia, mut ib) = (ra.len(), rb.len());
    while ia > 0 && ib > 0 {
        let (sa, sb) = (last_line_start(ra, ia), last_line_start(rb, ib));
        if ra[sa..ia] != rb[sb..ib] {
            break;
        }
        suf_lines += 1;
        ia = sa;
        ib = sb;
    }
    (pre_ends, suf_lines)
}

/// `@@ -a,b +c,d @@` the way git (and similar) print ranges, shifted by `shift` lines.
fn write_range(out: &mut String, r: std::ops::Range<usize>, shift: usize) {
    let len = r.end - r.start;
    let begin = r.start + shift + 1;
    if len == 1 {
        let _ = write!(out, "{begin}");
    } else {
        // An empty range names the line before it.
        let _ = write!(out, "{},{len}", if len == 0 { begin - 1 } else { begin });
    }
}

const CONTEXT: usize = 3;

/// Lines with their endings, split exactly like similar's `diff_lines` (`\r\n`, a lone
/// `\r` or `\n` ends a line) but a byte at a time: its char-by-char tokeniser was a third
/// of the diff's cost.
fn split_lines(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    // Counted exactly: growing the vector cost more than one more pass over the bytes.
    let mut lines = Vec::with_capacity(crate::bytescan::count(b, b'\n') + 1);
    if !crate::bytescan::contains(b, b'\r') {
        let mut start = 0;
        crate::bytescan::for_each_eq(b, b'\n', |i| {
            lines.push(&s[start..=i]);
            start = i + 1;
        });
        if start < b.len() {
            lines.push(&s[start..]);
        }
        return lines;
    }
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'\n' => {
                lines.push(&s[start..=i]);
                start = i + 1;
            }
            b'\r' => {
                if b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                lines.push(&s[start..=i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < b.len() {
        lines.push(&s[start..]);
    }
    lines
}

fn write_hunks(out: &mut String, old: &str, new: &str) -> LineCounts {
    // Diff only the changed middle plus context: tokenising whole files dominated the
    // cost for small edits to large files. Hunks are unchanged apart from the line shift.
    // similar also ends lines at a lone `\r`; trimming counts `\n` lines only, so files
    // with carriage returns are diffed whole to keep the hunk line numbers exact.
    let has_cr = |t: &str| crate::bytescan::contains(t.as_bytes(), b'\r');
    let (pre_ends, suf_lines) = if has_cr(old) || has_cr(new) {
        (Vec::new(), 0)
    } else {
        common_lines(old, new)
    };
    let skip = pre_ends.len().saturating_sub(CONTEXT);
    let skip_bytes = skip.checked_sub(1).map_or(0, |k| pre_ends[k]);
    let keep_suffix = suf_lines.saturating_sub(CONTEXT);
    let old_mid = &old[skip_bytes..old.len() - tail_lines_len(old, keep_suffix)];
    let new_mid = &new[skip_bytes..new.len() - tail_lines_len(new, keep_suffix)];
    let (old_lines, new_lines) = (split_lines(old_mid), split_lines(new_mid));
    let diff = TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .diff_slices(&old_lines, &new_lines);
    let mut counts = LineCounts::default();
    for hunk in diff.unified_diff().context_radius(CONTEXT).iter_hunks() {
        let ops = hunk.ops();
        let (first, last) = (ops[0], ops[ops.len() - 1]);
        out.push_str("@@ -");
        write_range(out, first.old_range().start..last.old_range().end, skip);
        out.push_str(" +");
        write_range(out, first.new_range().start..last.new_range().end, skip);
        out.push_str(" @@\n");
        for change in hunk.iter_changes() {
            let (tag, line) = (change.tag(), change.value());
            match tag {
                ChangeTag::Delete => {
                    counts.removed += 1;
                    out.push('-')
                }
                ChangeTag::Insert => {
                    counts.added += 1;
                    out.push('+')
                }
                ChangeTag::Equal => out.push(' '),
            }
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    counts
}

/// Splits a multi-file patch (as produced by `file_patch`, concatenated) at `diff --git`
/// boundaries: (file path, that file's patch text).
pub fn split_files(patch: &str) -> Vec<(&str, &str)> {
    let mut starts: Vec<usize> = patch
        .match_indices("diff --git a/")
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || patch.as_bytes()[i - 1] == b'\n')
        .collect();
    starts.push(patch.len());
    starts
        .windows(2)
        .map(|w| {
            let chunk = &patch[w[0]..w[1]];
            let header = chunk.lines().next().unwrap_or("");
            let path = header.rsplit_once(" b/").map(|(_, p)| p).unwrap_or("");
            (path, chunk)
        })
        .collect()
}

/// 128-bit FNV-1a of the patch's `+`/`-` lines and file headers with all whitespace
/// removed: the same change re-indented, or landed at other line numbers in a fork, hashes
/// the same. Line numbers and blob ids are left out on purpose.
pub fn normalized_hash(patch: &str) -> u128 {
    normalized_hash_of(&[patch])
}

/// `normalized_hash` of the concatenation of `parts`, each a whole number of lines.
pub fn normalized_hash_of(parts: &[&str]) -> u128 {
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for line in parts.iter().flat_map(|p| p.lines()) {
        let keep = line.starts_with('+') || line.starts_with('-');
        if !keep {
            continue;
        }
        for b in line.bytes().filter(|b| !b.is_ascii_whitespace()) {
            h ^= b as u128;
            h = h.wrapping_mul(PRIME);
        }
        h ^= b'\n' as u128;
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// Similarity of two texts in percent, the way rename detection needs it.
pub fn similarity(a: &str, b: &str) -> u32 {
    if a == b {
        return 100;
    }
    let diff = TextDiff::configure()
        .timeout(std::time::Duration::from_millis(200))
        .diff_lines(a, b);
    (diff.ratio() * 100.0).floor() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `common_lines`' leading part against its definition, line by line.
    #[test]
    fn common_leading_lines_match_the_line_by_line_definition() {
        let texts = [
            "",
            "a",
            "a\n",
            "a\nb",
            "a\nb\n",
            "a\nbc\n",
            "a\nb\nc\n",
            "ab\n",
            "line one is longer than sixteen bytes\nline two\nline three is long too\n",
            "line one is longer than sixteen bytes\nline two\nline three is long to\n",
            "line one is longer than sixteen bytes\nline 2\n",
        ];
        for a in texts {
            for b in texts {
                let mut want = Vec::new();
                let mut at = 0;
                for (x, y) in a.split_inclusive('\n').zip(b.split_inclusive('\n')) {
                    if x != y || !x.ends_with('\n') {
                        break;
                    }
                    at += x.len();
                    want.push(at);
                }
                assert_eq!(common_lines(a, b).0, want, "{a:?} vs {b:?}");
            }
        }
    }

    fn side<'a>(path: &'a str, text: &'a str) -> Side<'a> {
        Side {
            path,
            mode: "100644",
            id: "1234567890",
            text,
        }
    }

    #[test]
    fn modified_file_has_git_headers_and_hunk() {
        let (p, c) = file_patch(
            Some(side("a.py", "x = 1\ny = 2\n")),
            Some(side("a.py", "x = 1\ny = 3\n")),
            None,
        );
        assert_eq!(p, "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n");
        assert_eq!(
            c,
            LineCounts {
                added: 1,
                removed: 1
            }
        );
    }

    /// The `push_str` headers against the `format!` definition they replaced, for every
    /// kind of change (new, deleted, modified, mode change, rename, identical content).
    #[test]
    fn headers_match_the_formatted_definition() {
        fn reference(o: Option<Side<'_>>, n: Option<Side<'_>>, sim: Option<u32>) -> String {
            let mut out = String::new();
            let op = o.or(n).map(|s| s.path).unwrap_or_default();
            let np = n.or(o).map(|s| s.path).unwrap_or_default();
            let _ = writeln!(out, "diff --git a/{op} b/{np}");
            match (o, n) {
                (None, Some(n)) => {
                    let _ = writeln!(
                        out,
                        "new file mode {}\nindex 0000000..{}",
                        n.mode,
                        abbrev(n.id)
                    );
                }
                (Some(o), None) => {
                    let _ = writeln!(
                        out,
                        "deleted file mode {}\nindex {}..0000000",
                        o.mode,
                        abbrev(o.id)
                    );
                }
                (Some(o), Some(n)) => {
                    if o.mode != n.mode {
                        let _ = writeln!(out, "old mode {}\nnew mode {}", o.mode, n.mode);
                    }
                    if let Some(sim) = sim {
                        let _ = writeln!(
                            out,
                            "similarity index {sim}%\nrename from {}\nrename to {}",
                            o.path, n.path
                        );
                    }
                    if o.id != n.id {
                        let _ = write!(out, "index {}..{}", abbrev(o.id), abbrev(n.id));
                        if o.mode == n.mode {
                            let _ = write!(out, " {}", n.mode);
                        }
                        out.push('\n');
                    }
                }
                (None, None) => return String::new(),
            }
            let (ot, nt) = (
                o.map(|s| s.text).unwrap_or(""),
                n.map(|s| s.text).unwrap_or(""),
            );
            if ot != nt {
                let _ = writeln!(
                    out,
                    "--- {}",
                    o.map(|s| format!("a/{}", s.path))
                        .unwrap_or_else(|| "/dev/null".into())
                );
                let _ = writeln!(
                    out,
                    "+++ {}",
                    n.map(|s| format!("b/{}", s.path))
                        .unwrap_or_else(|| "/dev/null".into())
                );
            }
            out
        }
        let side = |path, mode, id, text| Side {
            path,
            mode,
            id,
            text,
        };
        let a = side("src/a.py", "100644", "1111111aaaa", "x = 1\n");
        let cases = [
            (None, Some(a), None),
            (Some(a), None, None),
            (
                Some(a),
                Some(side("src/a.py", "100644", "2222222bbbb", "x = 2\n")),
                None,
            ),
            (
                Some(a),
                Some(side("src/a.py", "100755", "1111111aaaa", "x = 1\n")),
                None,
            ),
            (
                Some(a),
                Some(side("src/a.py", "100755", "2222222bbbb", "x = 2\n")),
                None,
            ),
            (
                Some(a),
                Some(side("src/b.py", "100644", "1111111aaaa", "x = 1\n")),
                Some(100),
            ),
            (
                Some(a),
                Some(side("src/b.py", "100644", "3333333cccc", "x = 3\n")),
                Some(67),
            ),
            (None, None, None),
        ];
        for (o, n, sim) in cases {
            let (patch, _) = file_patch(o, n, sim);
            let want = reference(o, n, sim);
            assert!(patch.starts_with(&want), "{patch:?} vs {want:?}");
            assert!(!patch[want.len()..].contains("diff --git"), "{patch:?}");
            if !patch.is_empty() {
                assert!(patch.len() == want.len() || patch[want.len()..].starts_with("@@ -"));
            }
        }
    }

    #[test]
    fn missing_newline_is_marked() {
        let (p, _) = file_patch(Some(side("a", "a")), Some(side("a", "b")), None);
        assert!(
            p.ends_with(
                "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n"
            ),
            "{p}"
        );
    }

    #[test]
    fn new_and_deleted_files_use_dev_null() {
        let (p, _) = file_patch(None, Some(side("n.py", "a\n")), None);
        assert!(
            p.contains("new file mode 100644\n")
                && p.contains("--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+a\n"),
            "{p}"
        );
        let (p, _) = file_patch(Some(side("n.py", "a\n")), None, None);
        assert!(
            p.contains("deleted file mode 100644\n")
                && p.contains("--- a/n.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"),
            "{p}"
        );
    }

    #[test]
    fn hash_ignores_whitespace_and_line_numbers() {
        let a = "diff --git a/x b/x\n@@ -1,2 +1,2 @@\n-foo( a )\n+foo(b)\n";
        let b = "diff --git a/x b/x\n@@ -10,2 +10,2 @@\n-foo(a)\n+foo(  b )\n";
        let c = "diff --git a/x b/x\n@@ -1,2 +1,2 @@\n-foo(a)\n+foo(c)\n";
        assert_eq!(normalized_hash(a), normalized_hash(b));
        assert_ne!(normalized_hash(a), normalized_hash(c));
    }

    #[test]
    fn split_and_test_rule() {
        let p = "diff --git a/src/a.py b/src/a.py\n+x\ndiff --git a/tests/t.py b/tests/t.py\n+y\n";
        let parts = split_files(p);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].0, "tests/t.py");
        assert!(is_test_path(parts[1].0) && !is_test_path(parts[0].0));
        assert!(is_test_path("pkg/e2e/run.js"));
    }
}

/// Applies one file's unified-diff hunks (as in a SWE-bench `patch`) to `old`, checking every
/// context and removed line. Returns the new text or a message naming the failing hunk.
pub fn apply(old: &str, file_patch: &str) -> Result<String, String> {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let mut out = String::with_capacity(old.len() + file_patch.len());
    let mut pos = 0usize; // next unconsumed old line
    let mut lines = file_patch.split_inclusive('\n').peekable();
    // Skip the file header up to the first hunk.
    while lines.peek().is_some_and(|l| !l.starts_with("@@")) {
        lines.next();
    }
    while let Some(header) = lines.next() {
        if !header.starts_with("@@ -") {
            return Err(format!(
                "expected a hunk header, found {:?}",
                header.trim_end()
            ));
        }
        let old_start: usize = header[4..]
            .split([',', ' '])
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad hunk header {:?}", header.trim_end()))?;
        // `-0,0` (empty old side) starts before line 1.
        let start = old_start.saturating_sub(1).max(pos);
        if start > old_lines.len() {
            return Err(format!(
                "hunk {:?} starts past the end ({} lines)",
                header.trim_end(),
                old_lines.len()
            ));
        }
        for l in &old_lines[pos..start] {
            out.push_str(l);
        }
        pos = start;
        let mut last_added: Option<usize> = None;
        while let Some(l) = lines.peek().copied() {
            if l.starts_with("@@") {
                break;
            }
            lines.next();
            if l.starts_with('\\') {
                // "\ No newline at end of file" refers to the previous line.
                if let Some(at) = last_added {
                    if out.ends_with('\n') && at < out.len() {
                        out.pop();
                    }
                }
                continue;
            }
            let (tag, body) = l.split_at(1.min(l.len()));
            match tag {
                " " | "-" => {
                    let want = old_lines.get(pos).copied().unwrap_or("");
                    if want.trim_end_matches('\n') != body.trim_end_matches('\n') {
                        return Err(format!(
                            "hunk {:?}: line {} is {:?}, patch expects {:?}",
                            header.trim_end(),
                            pos + 1,
                            want.trim_end(),
                            body.trim_end()
                        ));
                    }
                    pos += 1;
                    if tag == " " {
                        out.push_str(want);
                        last_added = Some(out.len() - want.len());
                    } else {
                        last_added = None;
                    }
                }
                "+" => {
                    let start = out.len();
                    out.push_str(body);
                    if !body.ends_with('\n') {
                        out.push('\n');
                    }
                    last_added = Some(start);
                }
                "" | "\n" => {
                    // A blank line inside a hunk is an empty context line (some tools strip the space).
                    let want = old_lines.get(pos).copied().unwrap_or("");
                    if !want.trim_end_matches('\n').is_empty() {
                        return Err(format!(
                            "hunk {:?}: blank context line does not match line {}",
                            header.trim_end(),
                            pos + 1
                        ));
                    }
                    out.push_str(want);
                    pos += 1;
                    last_added = Some(out.len() - want.len());
                }
                _ => break, // next file's header
            }
        }
    }
    for l in &old_lines[pos.min(old_lines.len())..] {
        out.push_str(l);
    }
    Ok(out)
}

#[cfg(test)]
mod apply_tests {
    use super::*;

    fn round_trip(old: &str, new: &str) {
        let s = |text| Side {
            path: "f",
            mode: "100644",
            id: "aaaaaaa",
            text,
        };
        let (p, _) = file_patch(
            Some(s(old)),
            Some(Side {
                id: "bbbbbbb",
                ..s(new)
            }),
            None,
        );
        assert_eq!(apply(old, &p).as_deref(), Ok(new), "patch:\n{p}");
    }

    #[test]
    fn apply_inverts_file_patch() {
        let base: String = (0..40).map(|i| format!("line {i}\n")).collect();
        round_trip(
            &base,
            &base.replace("line 3\n", "three\n").replace("line 30\n", ""),
        );
        round_trip("a\nb", "a\nc");
        round_trip("a\nb", "a\nb\n");
        round_trip("a\nb\n", "a\nb");
        round_trip("", "x\ny\n");
        round_trip("x\ny\n", "");
        round_trip(&base, &format!("top\n{base}bottom\n"));
    }

    #[test]
    fn trimmed_diff_equals_whole_file_diff() {
        use similar::DiffableStr;
        // The reference: similar's own unified diff of the whole files.
        let whole = |old: &str, new: &str| {
            let d = TextDiff::configure()
                .algorithm(similar::Algorithm::Myers)
                .diff_lines(old, new);
            let mut out = String::new();
            for h in d.unified_diff().context_radius(3).iter_hunks() {
                let _ = writeln!(out, "{}", h.header());
                for c in h.iter_changes() {
                    let sign = match c.tag() {
                        ChangeTag::Delete => '-',
                        ChangeTag::Insert => '+',
                        ChangeTag::Equal => ' ',
                    };
                    out.push(sign);
                    out.push_str(c.value());
                    if !c.value().ends_with('\n') {
                        out.push_str("\n\\ No newline at end of file\n");
                    }
                }
            }
            out
        };
        let base: String = (0..60).map(|i| format!("línea {i}\n")).collect();
        let cases = [
            (base.clone(), base.replace("línea 30\n", "x\n")),
            (base.clone(), base.replace("línea 2\n", "")),
            (base.clone(), base.replace("línea 57\n", "y\nz\n")),
            (base.clone(), format!("{base}tail")),
            (format!("{base}é"), format!("{base}è")),
            (
                base.clone(),
                base.replace("línea 10\n", "a\n")
                    .replace("línea 50\n", "b\n"),
            ),
            ("a\na\na\na\n".to_string(), "a\na\na\n".to_string()),
            (String::new(), "only\n".to_string()),
            (
                format!("{base}x\ry\r\nz\n{base}"),
                format!("{base}x\ry2\r\nz\n{base}"),
            ),
            (format!("a\r\n{base}\r"), format!("a\r\n{base}\rb")),
        ];
        for (old, _) in &cases {
            let lines: Vec<&str> = split_lines(old);
            assert_eq!(lines, old.tokenize_lines(), "{old:?}");
        }
        for (old, new) in &cases {
            let mut out = String::new();
            write_hunks(&mut out, old, new);
            assert_eq!(out, whole(old, new), "old={old:?} new={new:?}");
        }
    }

    #[test]
    fn apply_reports_mismatch() {
        let err = apply("a\nb\n", "@@ -1,2 +1,2 @@\n a\n-c\n+d\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("\"c\""), "{err}");
    }
}
