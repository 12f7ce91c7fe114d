//! The answer format: `<think>`/`<solution>` splitting, SEARCH/REPLACE block parsing (the
//! reference's regex, matched by hand) and applying the blocks to the files.

use std::collections::BTreeMap;

use super::pystr::py_strip;

const TAGS: [&str; 4] = ["<think>", "</think>", "<solution>", "</solution>"];
const FENCE: &str = "```";
const PATH_PREFIX: &str = "\n### ";
const SEARCH_OPEN: &str = "\n<<<<<<< SEARCH\n";
const DIVIDER: &str = "\n=======\n";
const REPLACE_CLOSE: &str = "\n>>>>>>> REPLACE\n```";

/// Why an answer earns −1. Messages are the reference implementation's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("count of {tag} is not 1")]
    TagCount { tag: &'static str, count: usize },
    #[error("Thought is empty")]
    EmptyThought,
    #[error("No valid search blocks found")]
    NoEditBlocks,
    #[error("Search and replace blocks are identical")]
    IdenticalSearchReplace { path: String },
    /// `search` is shown with the leading newline the applier adds, as the reference does.
    #[error("Search block not found in the code: \n{search}")]
    SearchNotFound { path: String, search: String },
}

impl FormatError {
    /// A stable short name for metrics and JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            FormatError::TagCount { .. } => "tag_count",
            FormatError::EmptyThought => "empty_thought",
            FormatError::NoEditBlocks => "no_edit_blocks",
            FormatError::IdenticalSearchReplace { .. } => "identical_search_replace",
            FormatError::SearchNotFound { .. } => "search_not_found",
        }
    }
}

/// Splits a completion into (thought, answer): each tag exactly once, both parts stripped
/// with Python's whitespace set, and the thought non-empty.
pub fn extract_thought_solution(output: &str) -> Result<(&str, &str), FormatError> {
    for tag in TAGS {
        let count = output.matches(tag).count();
        if count != 1 {
            return Err(FormatError::TagCount { tag, count });
        }
    }
    let between = |open: &str, close: &str| {
        let rest = output.split_once(open).map_or("", |(_, r)| r);
        py_strip(rest.split_once(close).map_or(rest, |(inner, _)| inner))
    };
    let thought = between(TAGS[0], TAGS[1]);
    let answer = between(TAGS[2], TAGS[3]);
    if thought.is_empty() {
        return Err(FormatError::EmptyThought);
    }
    Ok((thought, answer))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchReplace {
    pub search: String,
    pub replace: String,
}

/// The blocks of one path, in the order they appear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdits {
    pub path: String,
    pub edits: Vec<SearchReplace>,
}

/// First occurrence of a literal at or after a position, for queries whose positions never
/// decrease: the previous answer is reused while it is still ahead, so a scan stays linear.
struct Finder<'t> {
    text: &'t str,
    lit: &'static str,
    from: usize,
    found: Option<Option<usize>>,
}

impl<'t> Finder<'t> {
    fn new(text: &'t str, lit: &'static str) -> Self {
        Finder {
            text,
            lit,
            from: 0,
            found: None,
        }
    }

    fn find(&mut self, from: usize) -> Option<usize> {
        if let Some(prev) = self.found {
            if from >= self.from && prev.is_none_or(|p| p >= from) {
                return prev;
            }
        }
        let hit = self
            .text
            .get(from..)
            .and_then(|t| t.find(self.lit))
            .map(|p| p + from);
        self.from = from;
        self.found = Some(hit);
        hit
    }
}

/// Every non-overlapping match, in order, of the reference's pattern
/// `` ```.*?\n### (.*)\n<<<<<<< SEARCH\n([\s\S]*?)\n=======\n([\s\S]*?)\n>>>>>>> REPLACE\n``` ``
/// as `(path, search, replace)`. Because `.` stops at `\n` and every literal after a `.` run
/// starts with `\n`, a match from a given fence is unique: the fence line ends at its first
/// newline, the path is the next line, and the lazy groups end at the first divider and the
/// first closing marker after it.
pub fn find_blocks(text: &str) -> Vec<(&str, &str, &str)> {
    let mut fences = Finder::new(text, FENCE);
    let mut newlines = Finder::new(text, "\n");
    let mut dividers = Finder::new(text, DIVIDER);
    let mut closers = Finder::new(text, REPLACE_CLOSE);
    let mut blocks = Vec::new();
    let mut pos = 0;
    while let Some(s) = fences.find(pos) {
        pos = s + 1;
        let Some(p1) = newlines.find(s + FENCE.len()) else {
            break;
        };
        if !text[p1..].starts_with(PATH_PREFIX) {
            continue;
        }
        let path_start = p1 + PATH_PREFIX.len();
        let Some(path_end) = newlines.find(path_start) else {
            break;
        };
        if !text[path_end..].starts_with(SEARCH_OPEN) {
            continue;
        }
        let search_start = path_end + SEARCH_OPEN.len();
        let Some(t) = dividers.find(search_start) else {
            break;
        };
        let replace_start = t + DIVIDER.len();
        let Some(u) = closers.find(replace_start) else {
            break;
        };
        blocks.push((
            &text[path_start..path_end],
            &text[search_start..t],
            &text[replace_start..u],
        ));
        pos = u + REPLACE_CLOSE.len();
    }
    blocks
}

/// The answer's blocks grouped by path in order of the path's first appearance; the path is
/// kept verbatim (not stripped).
pub fn parse_search_replace(answer: &str) -> Vec<FileEdits> {
    let mut files: Vec<FileEdits> = Vec::new();
    for (path, search, replace) in find_blocks(answer) {
        let edit = SearchReplace {
            search: search.to_string(),
            replace: replace.to_string(),
        };
        match files.iter_mut().find(|f| f.path == path) {
            Some(f) => f.edits.push(edit),
            None => files.push(FileEdits {
                path: path.to_string(),
                edits: vec![edit],
            }),
        }
    }
    files
}

/// Applies each path's blocks in order to `"\n" + old` (an unknown path is an empty file):
/// every occurrence of `"\n" + search` becomes `"\n" + replace`; a block whose search equals
/// its replace, or whose search is absent, is a format error.
pub fn apply_code_change(
    code_context: &BTreeMap<String, String>,
    files: &[FileEdits],
) -> Result<BTreeMap<String, String>, FormatError> {
    let mut out = BTreeMap::new();
    for file in files {
        let old = code_context.get(&file.path).map_or("", String::as_str);
        let mut content = format!("\n{old}");
        for e in &file.edits {
            if e.search == e.replace {
                return Err(FormatError::IdenticalSearchReplace {
                    path: file.path.clone(),
                });
            }
            let search = format!("\n{}", e.search);
            if !content.contains(&search) {
                return Err(FormatError::SearchNotFound {
                    path: file.path.clone(),
                    search: e.search.clone(),
                });
            }
            content = content.replace(&search, &format!("\n{}", e.replace));
        }
        content.remove(0);
        out.insert(file.path.clone(), content);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_thought_and_answer() {
        let out = "<solution> a </solution>\n<think>\u{1c}why\n</think>";
        assert_eq!(extract_thought_solution(out), Ok(("why", "a")));
        assert_eq!(
            extract_thought_solution("<think>x</think><think>"),
            Err(FormatError::TagCount {
                tag: "<think>",
                count: 2
            })
        );
        let empty = "<think> \u{a0}</think><solution>x</solution>";
        assert_eq!(
            extract_thought_solution(empty),
            Err(FormatError::EmptyThought)
        );
        // `</think>` before `<think>`: the thought runs to the end.
        let out = "</think><solution>s</solution><think>t";
        assert_eq!(extract_thought_solution(out), Ok(("t", "s")));
    }

    #[test]
    fn parses_blocks_like_the_reference_regex() {
        let text = "```python\n### a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```\n\
                    ```\n### b.py\n<<<<<<< SEARCH\n\n=======\nnew\n>>>>>>> REPLACE\n```\n\
                    ```\n### a.py\n<<<<<<< SEARCH\nz\n=======\nw\n>>>>>>> REPLACE\n```";
        let files = parse_search_replace(text);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "a.py");
        assert_eq!(files[0].edits.len(), 2);
        assert_eq!(files[1].edits[0].search, "");
        // No blank line between the marker and the divider: the search group runs on to the
        // next divider, as the regex does.
        let t = "```\n### p\n<<<<<<< SEARCH\n=======\na\n=======\nb\n>>>>>>> REPLACE\n```";
        assert_eq!(find_blocks(t), vec![("p", "=======\na", "b")]);
    }

    #[test]
    fn applies_all_occurrences_and_reports_errors() {
        let mut ctx = BTreeMap::new();
        ctx.insert("f".to_string(), "a\nb\na\nab\n".to_string());
        let edit = |s: &str, r: &str| FileEdits {
            path: "f".into(),
            edits: vec![SearchReplace {
                search: s.into(),
                replace: r.into(),
            }],
        };
        let out = apply_code_change(&ctx, &[edit("a", "c")]).unwrap();
        assert_eq!(out["f"], "c\nb\nc\ncb\n");
        assert!(matches!(
            apply_code_change(&ctx, &[edit("q", "c")]),
            Err(FormatError::SearchNotFound { .. })
        ));
        assert!(matches!(
            apply_code_change(&ctx, &[edit("a", "a")]),
            Err(FormatError::IdenticalSearchReplace { .. })
        ));
        let new = FileEdits {
            path: "new.py".into(),
            edits: vec![SearchReplace {
                search: "".into(),
                replace: "x = 1".into(),
            }],
        };
        assert_eq!(apply_code_change(&ctx, &[new]).unwrap()["new.py"], "x = 1");
    }
}
