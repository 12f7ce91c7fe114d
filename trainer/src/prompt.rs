//! SWE-RL prompts: a system message that fixes the answer format (reasoning in
//! `<think>…</think>`, then SEARCH/REPLACE edits in `<solution>…</solution>`) and a user
//! message with the issue and the code context (`### path` then the file, files separated by
//! a blank line). The wording is swerl's own; users can supply their own template file.

use std::path::{Path, PathBuf};

use minijinja::{context, Environment, UndefinedBehavior};
use serde::Serialize;

/// Default system message.
pub const SYSTEM: &str = "\
You are a careful software engineer who resolves issues in code repositories. \
Work out the fix step by step first, writing that reasoning between <think> and </think>. \
Then give the final code changes between <solution> and </solution>, as SEARCH/REPLACE edits \
in the format the user describes. Both parts are required, each exactly once.";

/// Default user message (a minijinja template over `problem_statement`, `code_context` and
/// `files`).
pub const USER: &str = r#"Here is an issue reported against our repository.
--- ISSUE START ---
{{ problem_statement }}
--- ISSUE END ---

Below are the contents of files that are relevant to the issue. The fix may need changes in one or more of them.
--- FILES START ---
{{ code_context }}
--- FILES END ---

First find the cause of the issue, then fix it with *SEARCH/REPLACE* edits. Each edit has this shape:
1. a line with three backticks and the language;
2. a line `### ` followed by the path of the file to change;
3. the line `<<<<<<< SEARCH`;
4. the exact, contiguous lines of the current file to replace, with their indentation;
5. the line `=======`;
6. the lines that take their place;
7. the line `>>>>>>> REPLACE`;
8. a line with three backticks.

For example, to make `average` tolerate an empty list:

```python
### stats/summary.py
<<<<<<< SEARCH
def average(values):
    return sum(values) / len(values)
=======
def average(values):
    if not values:
        return 0.0
    return sum(values) / len(values)
>>>>>>> REPLACE
```

Indent the replacement exactly as the code should read: whitespace matters. You may give several edits, for one or several files; each SEARCH block must match the current file exactly. Write your reasoning inside <think>...</think> and put all edits inside <solution>...</solution>."#;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "prompt template {path}: {message} (expected TOML with string keys `system` and `user`)"
    )]
    Parse { path: PathBuf, message: String },
    #[error("prompt template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
}

/// One chat message, in the shape chat templates take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, Serialize)]
struct FileView<'a> {
    path: &'a str,
    content: &'a str,
}

/// `### path` + newline + content for each file, separated by a blank line.
pub fn code_context_block(files: &[(&str, &str)]) -> String {
    files
        .iter()
        .map(|(path, content)| format!("### {path}\n{content}"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The line `...` stands for elided lines in a windowed file.
pub const ELISION: &str = "...";

/// Line ranges `(old, new)` covering every changed line: everything outside is the longest
/// common prefix and suffix of the two files' lines, so a window of `old` over its range plus
/// equal margins maps onto the same window of `new`. `None` when the files are identical.
pub fn changed_span(old: &str, new: &str) -> Option<((usize, usize), (usize, usize))> {
    if old == new {
        return None;
    }
    let a: Vec<&str> = old.split('\n').collect();
    let b: Vec<&str> = new.split('\n').collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    Some(((prefix, a.len() - suffix), (prefix, b.len() - suffix)))
}

/// Lines `[lo, hi)` of `text` widened by `margin` either side and clamped, joined by `\n`.
pub fn line_window(text: &str, lo: usize, hi: usize, margin: usize) -> (String, bool, bool) {
    let lines: Vec<&str> = text.split('\n').collect();
    let start = lo.saturating_sub(margin);
    let end = (hi + margin).min(lines.len());
    (lines[start..end].join("\n"), start > 0, end < lines.len())
}

/// `old` cut to its changed lines (those `new` differs in) plus `margin` lines either side,
/// with a `...` line standing for each elided part; `old` itself when nothing is elided or
/// the files are identical.
pub fn change_window(old: &str, new: &str, margin: usize) -> String {
    let Some(((lo, hi), _)) = changed_span(old, new) else {
        return old.to_string();
    };
    let (body, cut_before, cut_after) = line_window(old, lo, hi, margin);
    let mut out = String::new();
    if cut_before {
        out.push_str(ELISION);
        out.push('\n');
    }
    out.push_str(&body);
    if cut_after {
        out.push('\n');
        out.push_str(ELISION);
    }
    out
}

/// A system and a user template (minijinja; variables `problem_statement`, `code_context`
/// — the rendered file block — and `files`, a list of `{path, content}`).
pub struct PromptTemplate {
    env: Environment<'static>,
    origin: String,
}

impl PromptTemplate {
    /// The built-in SWE-RL-style prompt.
    pub fn swe_rl() -> Self {
        Self::from_sources(SYSTEM.to_string(), USER.to_string(), "built-in".into())
            .expect("the built-in prompt template is valid")
    }

    /// A TOML file with `system = "..."` and `user = "..."` (multi-line strings welcome).
    pub fn from_file(path: &Path) -> Result<Self, PromptError> {
        let text = std::fs::read_to_string(path).map_err(|source| PromptError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            system: String,
            user: String,
        }
        let f: File = toml::from_str(&text).map_err(|e| PromptError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        Self::from_sources(f.system, f.user, path.display().to_string())
    }

    fn from_sources(system: String, user: String, origin: String) -> Result<Self, PromptError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        for (name, src) in [("system", system), ("user", user)] {
            env.add_template_owned(name, src)
                .map_err(|source| PromptError::Template {
                    name: format!("{origin} ({name})"),
                    source,
                })?;
        }
        Ok(PromptTemplate { env, origin })
    }

    /// The system and user messages for one problem; files appear in the order given.
    pub fn render(
        &self,
        problem_statement: &str,
        files: &[(&str, &str)],
    ) -> Result<[Message; 2], PromptError> {
        let views: Vec<FileView<'_>> = files
            .iter()
            .map(|&(path, content)| FileView { path, content })
            .collect();
        let ctx = context! {
            problem_statement => problem_statement,
            code_context => code_context_block(files),
            files => views,
        };
        let render = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|source| PromptError::Template {
                    name: format!("{} ({name})", self.origin),
                    source,
                })
        };
        Ok([
            Message {
                role: "system",
                content: render("system")?,
            },
            Message {
                role: "user",
                content: render("user")?,
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::search_replace::find_blocks;

    #[test]
    fn default_prompt_has_the_swe_rl_structure() {
        let files = [("a.py", "x = 1\n"), ("pkg/b.py", "def f():\n    pass")];
        let [system, user] = PromptTemplate::swe_rl()
            .render("f() {crashes} on <input>", &files)
            .unwrap();
        assert_eq!(system.role, "system");
        assert!(system.content.contains("<think>") && system.content.contains("<solution>"));
        assert!(user
            .content
            .contains("--- ISSUE START ---\nf() {crashes} on <input>\n--- ISSUE END ---"));
        assert!(user.content.contains(
            "--- FILES START ---\n### a.py\nx = 1\n\n\n### pkg/b.py\ndef f():\n    pass\n--- FILES END ---"
        ));
        // The example edit in the instructions is itself a well-formed answer.
        let blocks = find_blocks(&user.content);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].0, "stats/summary.py");
        assert_eq!(
            blocks[0].1,
            "def average(values):\n    return sum(values) / len(values)"
        );
    }

    #[test]
    fn change_windows_keep_the_changed_lines_and_margins() {
        let old: String = (0..20).map(|i| format!("l{i}\n")).collect();
        let new = old.replace("l9\n", "l9 fixed\nextra\n");
        assert_eq!(changed_span(&old, &new), Some(((9, 10), (9, 11))));
        assert_eq!(
            change_window(&old, &new, 2),
            "...\nl7\nl8\nl9\nl10\nl11\n..."
        );
        // The same window of the new file is the old window with the edit applied.
        let ((lo, hi), (nlo, nhi)) = changed_span(&old, &new).unwrap();
        let (w_old, ..) = line_window(&old, lo, hi, 2);
        let (w_new, ..) = line_window(&new, nlo, nhi, 2);
        assert_eq!(w_new, w_old.replace("l9\n", "l9 fixed\nextra\n"));
        // A margin reaching both ends shows the whole file; no change shows it whole too.
        assert_eq!(change_window(&old, &new, 50), old);
        assert_eq!(change_window(&old, &old, 0), old);
        // A pure insertion at the top: an empty old span, the margin after it.
        let ins = format!("new\n{old}");
        assert_eq!(changed_span(&old, &ins), Some(((0, 0), (0, 1))));
        assert_eq!(change_window(&old, &ins, 1), "l0\n...");
        // Repeated lines: prefix and suffix never overlap.
        assert_eq!(changed_span("a\na", "a\na\na"), Some(((2, 2), (2, 3))));
    }

    #[test]
    fn user_templates_load_render_and_report_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "system = \"Answer briefly.\"\nuser = \"\"\"\n{{ problem_statement }}\n{% for f in files %}[{{ f.path }}]{% endfor %}\"\"\"\n",
        )
        .unwrap();
        let t = PromptTemplate::from_file(&path).unwrap();
        let [s, u] = t.render("bug", &[("a", "1"), ("b", "2")]).unwrap();
        assert_eq!(s.content, "Answer briefly.");
        assert_eq!(u.content, "bug\n[a][b]");

        std::fs::write(&path, "system = \"x\"\nuser = \"{{ issue_text }}\"\n").unwrap();
        let err = PromptTemplate::from_file(&path)
            .unwrap()
            .render("bug", &[])
            .unwrap_err();
        assert!(err.to_string().contains("p.toml (user)"), "{err}");

        std::fs::write(&path, "user = \"x\"\n").unwrap();
        let err = PromptTemplate::from_file(&path).err().unwrap();
        assert!(err.to_string().contains("system"), "{err}");
        assert!(PromptTemplate::from_file(&dir.path().join("missing.toml")).is_err());
    }
}
