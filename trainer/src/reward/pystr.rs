//! Python `str` semantics the reference reward relies on. Rust's `trim` and `lines` use
//! different character sets, and one differing byte changes the patch and thus the reward.

/// `str.isspace()` of CPython 3 (Unicode White_Space plus the ASCII separators
/// U+001C..U+001F, which Python counts as whitespace and Rust does not).
pub fn is_py_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_whitespace)
}

/// Line boundaries of `str.splitlines()`; `\r\n` is handled by the splitter.
fn is_line_boundary(c: char) -> bool {
    matches!(
        c,
        '\n' | '\u{b}'
            | '\u{c}'
            | '\r'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// `str.splitlines()` (without `keepends`): no empty trailing line after a final boundary,
/// and `""` gives no lines.
pub fn py_splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if is_line_boundary(c) {
            lines.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(_, '\n')) = it.peek() {
                    it.next();
                    end += 1;
                }
            }
            start = end;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_uses_python_whitespace() {
        assert_eq!(py_strip("\u{1c}\u{a0} x y\u{3000}\u{1f}"), "x y");
        assert_eq!(py_strip("\u{200b}x"), "\u{200b}x");
        assert_eq!(py_strip(" \t\n "), "");
    }

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(py_splitlines(""), Vec::<&str>::new());
        assert_eq!(py_splitlines("\n"), vec![""]);
        assert_eq!(
            py_splitlines("a\r\nb\rc\n\nd"),
            vec!["a", "b", "c", "", "d"]
        );
        assert_eq!(py_splitlines("a\r\r\nb"), vec!["a", "", "b"]);
        assert_eq!(
            py_splitlines("a\u{b}b\u{c}c\u{1c}d\u{1d}e\u{1e}f\u{85}g\u{2028}h\u{2029}i\u{1f}j"),
            vec!["a", "b", "c", "d", "e", "f", "g", "h", "i\u{1f}j"]
        );
        assert_eq!(py_splitlines("x\n"), vec!["x"]);
    }
}
