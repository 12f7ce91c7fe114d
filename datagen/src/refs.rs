//! Linked-issue references, SWE-bench's rule: one of the closing keywords followed by
//! whitespace and `#N` (or an issue URL), anywhere in PR title, body and commit messages.

const KEYWORDS: [&str; 9] = [
    "close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved",
];

/// Issue numbers referenced with a closing keyword, in order of first mention, deduplicated.
/// HTML comments (PR templates) are removed first, as SWE-bench does.
pub fn linked_issues(text: &str) -> Vec<u64> {
    let text = strip_html_comments(text);
    let mut out = Vec::new();
    let words: Vec<(usize, &str)> = word_spans(&text);
    for (n, &(end, word)) in words.iter().enumerate() {
        if !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
            continue;
        }
        let rest = &text[end..];
        let trimmed = rest.trim_start();
        if trimmed.len() == rest.len() {
            continue; // the keyword must be followed by whitespace
        }
        let num = if let Some(r) = trimmed.strip_prefix('#') {
            leading_number(r)
        } else {
            issue_url_number(trimmed)
        };
        if let Some(num) = num {
            if !out.contains(&num) {
                out.push(num);
            }
        }
        let _ = n;
    }
    out
}

fn strip_html_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// (byte offset just past the word, word) for each maximal run of `\w` characters.
fn word_spans(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let w = c.is_alphanumeric() || c == '_';
        match (w, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((i, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((text.len(), &text[s..]));
    }
    out
}

fn leading_number(s: &str) -> Option<u64> {
    let digits: &str = &s[..s.bytes().take_while(u8::is_ascii_digit).count()];
    digits.parse().ok()
}

/// `https://github.com/owner/repo/issues/123` → 123.
fn issue_url_number(s: &str) -> Option<u64> {
    let url = s.split_whitespace().next()?;
    let url = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (_, tail) = url.split_once("/issues/")?;
    leading_number(tail)
}

/// `Merge pull request #123 from owner/branch` → 123.
pub fn merge_pr_number(subject: &str) -> Option<u64> {
    let rest = subject.strip_prefix("Merge pull request #")?;
    let n = leading_number(rest)?;
    rest[n.to_string().len()..]
        .starts_with(" from ")
        .then_some(n)
}

/// `Title (#123)` → (Title, 123): GitHub's squash-merge subject.
pub fn squash_pr_number(subject: &str) -> Option<(&str, u64)> {
    let s = subject.trim_end();
    let inner = s.strip_suffix(')')?;
    let open = inner.rfind("(#")?;
    let n: u64 = inner[open + 2..].parse().ok()?;
    Some((inner[..open].trim_end(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swe_bench_keywords() {
        let t = "Fixes #12 and resolves #7; closes: #9 (no: colon) mentions #5\nFIXED https://github.com/o/r/issues/44 fix #12";
        assert_eq!(linked_issues(t), vec![12, 7, 44]);
        assert_eq!(linked_issues("<!-- fixes #1 -->fix #2"), vec![2]);
        assert_eq!(linked_issues("prefix#3 fixes#4"), Vec::<u64>::new());
    }

    #[test]
    fn pr_subjects() {
        assert_eq!(
            merge_pr_number("Merge pull request #42 from alice/feature"),
            Some(42)
        );
        assert_eq!(merge_pr_number("Merge branch 'main'"), None);
        assert_eq!(squash_pr_number("Add thing (#17)"), Some(("Add thing", 17)));
        assert_eq!(squash_pr_number("Add thing (see #17)"), None);
    }
}
