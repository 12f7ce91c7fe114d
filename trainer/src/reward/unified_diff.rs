//! `difflib.unified_diff` (no dates) and the reward's normalised per-file patch.

use super::difflib::{SequenceMatcher, Tag};
use super::pystr::py_splitlines;

/// `difflib._format_range_unified`: 1-based start, and the length unless it is 1.
fn format_range_unified(start: usize, stop: usize) -> String {
    let length = stop - start;
    match length {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        _ => format!("{},{}", start + 1, length),
    }
}

/// `list(difflib.unified_diff(a, b, fromfile, tofile, lineterm=lineterm, n=n))`: empty when
/// the sequences are equal (not even the `---`/`+++` header).
pub fn unified_diff(
    a: &[&str],
    b: &[&str],
    fromfile: &str,
    tofile: &str,
    lineterm: &str,
    n: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let groups = SequenceMatcher::new(a, b, true).get_grouped_opcodes(n);
    for (g, group) in groups.iter().enumerate() {
        if g == 0 {
            out.push(format!("--- {fromfile}{lineterm}"));
            out.push(format!("+++ {tofile}{lineterm}"));
        }
        hunk_lines(a, b, group, lineterm, &mut out);
    }
    out
}

fn hunk_lines(
    a: &[&str],
    b: &[&str],
    group: &[super::difflib::Opcode],
    lineterm: &str,
    out: &mut Vec<String>,
) {
    let (first, last) = (group[0], group[group.len() - 1]);
    out.push(format!(
        "@@ -{} +{} @@{lineterm}",
        format_range_unified(first.i1, last.i2),
        format_range_unified(first.j1, last.j2)
    ));
    for op in group {
        if op.tag == Tag::Equal {
            out.extend(a[op.i1..op.i2].iter().map(|l| format!(" {l}")));
            continue;
        }
        if matches!(op.tag, Tag::Replace | Tag::Delete) {
            out.extend(a[op.i1..op.i2].iter().map(|l| format!("-{l}")));
        }
        if matches!(op.tag, Tag::Replace | Tag::Insert) {
            out.extend(b[op.j1..op.j2].iter().map(|l| format!("+{l}")));
        }
    }
}

/// The reference reward's patch of one file: the unified diff (n = 3, `lineterm=""`) of the
/// `splitlines()` of both texts without its two header lines, joined by `"\n"`; `""` when the
/// texts have equal lines.
pub fn normalized_patch(old: &str, new: &str) -> String {
    let a = py_splitlines(old);
    let b = py_splitlines(new);
    let groups = SequenceMatcher::new(&a, &b, true).get_grouped_opcodes(3);
    let mut lines = Vec::new();
    for group in &groups {
        hunk_lines(&a, &b, group, "", &mut lines);
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_ed_format() {
        assert_eq!(format_range_unified(3, 4), "4");
        assert_eq!(format_range_unified(3, 3), "3,0");
        assert_eq!(format_range_unified(0, 0), "0,0");
        assert_eq!(format_range_unified(2, 7), "3,5");
    }

    #[test]
    fn small_diff_has_header_and_hunk() {
        let a = ["x", "y", "z"];
        let b = ["x", "Y", "z"];
        assert_eq!(
            unified_diff(&a, &b, "old", "new", "", 3),
            vec![
                "--- old",
                "+++ new",
                "@@ -1,3 +1,3 @@",
                " x",
                "-y",
                "+Y",
                " z"
            ]
        );
        assert!(unified_diff(&a, &a, "old", "new", "", 3).is_empty());
        assert_eq!(normalized_patch("x\ny\n", "x\ny"), "");
        assert_eq!(normalized_patch("", "a\n"), "@@ -0,0 +1 @@\n+a");
    }
}
