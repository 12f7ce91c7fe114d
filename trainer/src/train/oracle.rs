//! Oracle answers in the SWE-RL output format: one SEARCH/REPLACE block per changed file,
//! spanning the file's changed lines plus just enough context to occur exactly once.

use std::collections::BTreeMap;

use crate::reward::calculate_search_replace_reward;
use crate::reward::difflib::{SequenceMatcher, Tag};

/// `(search, replace)` turning `old` into `new`, or `None` when the file is unchanged.
pub fn file_edit(old: &str, new: &str) -> Option<(String, String)> {
    if old == new {
        return None;
    }
    if old.is_empty() {
        return Some((String::new(), new.to_string()));
    }
    let a: Vec<&str> = old.split('\n').collect();
    let b: Vec<&str> = new.split('\n').collect();
    let ops = SequenceMatcher::new(&a, &b, false).get_opcodes();
    let changed: Vec<_> = ops.iter().filter(|o| o.tag != Tag::Equal).collect();
    let (first, last) = (changed.first()?, changed.last()?);
    let (i0, i1, j0, j1) = (first.i1, last.i2, first.j1, last.j2);
    let haystack = format!("\n{old}");
    let max_k = a.len().max(b.len());
    for k in 1..=max_k {
        let (lo, hi) = (k.min(i0).min(j0), k.min(a.len() - i1).min(b.len() - j1));
        let search = a[i0 - lo..i1 + hi].join("\n");
        let replace = b[j0 - lo..j1 + hi].join("\n");
        if !search.is_empty()
            && search != replace
            && haystack.matches(&format!("\n{search}")).count() == 1
        {
            return Some((search, replace));
        }
        if lo < k && hi < k {
            break;
        }
    }
    Some((old.to_string(), new.to_string()))
}

/// The full answer (`<think>` + `<solution>` with the blocks), or `None` if the blocks do
/// not reproduce the oracle exactly under the SWE-RL reward (reward 1).
pub fn oracle_answer(
    thought: &str,
    code_context: &BTreeMap<String, String>,
    oracle_new: &BTreeMap<String, String>,
) -> Option<String> {
    let mut blocks = String::new();
    for (path, new) in oracle_new {
        let old = code_context.get(path).map_or("", String::as_str);
        if let Some((s, r)) = file_edit(old, new) {
            blocks.push_str(&format!(
                "```\n### {path}\n<<<<<<< SEARCH\n{s}\n=======\n{r}\n>>>>>>> REPLACE\n```\n"
            ));
        }
    }
    if blocks.is_empty() {
        return None;
    }
    let text = format!(
        "<think>\n{}\n</think>\n<solution>\n{blocks}</solution>",
        thought.trim()
    );
    let out = calculate_search_replace_reward(code_context, oracle_new, &text);
    (out.reward == 1.0).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_answers_score_one() {
        let old = "def f():\n    return 1\n\ndef g():\n    return 1\n";
        let new = "def f():\n    return 1\n\ndef g():\n    return 2\n";
        let (s, r) = file_edit(old, new).unwrap();
        // The changed line plus one line of context on each side (here the final newline).
        assert_eq!(
            (s.as_str(), r.as_str()),
            ("def g():\n    return 1\n", "def g():\n    return 2\n")
        );
        let ctx = BTreeMap::from([("a.py".to_string(), old.to_string())]);
        let oracle = BTreeMap::from([
            ("a.py".to_string(), new.to_string()),
            ("b.py".to_string(), "x = 1\n".to_string()),
        ]);
        let text = oracle_answer("change g", &ctx, &oracle).unwrap();
        assert!(
            text.contains("### b.py\n<<<<<<< SEARCH\n\n=======\nx = 1\n"),
            "{text}"
        );
    }
}
