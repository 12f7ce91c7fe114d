//! Prompts for training: the SWE-RL template (`crate::prompt`) rendered through the model's
//! chat template, with `max_prompt_length` handling — relevant-unmodified files are dropped
//! first; an instance that still does not fit is skipped (and counted by the caller).

use std::collections::BTreeMap;

use model::{Message, Tokenizer};

use super::{Result, TrainError};
use crate::prompt::{change_window, PromptTemplate};

/// The parts of a problem the prompt shows.
#[derive(Debug, Clone)]
pub struct PromptInput<'a> {
    pub problem_statement: &'a str,
    /// path → file text of every file in the context.
    pub code_context: &'a BTreeMap<String, String>,
    /// Context files the change does not modify (dropped first when the prompt is too long).
    pub droppable: Vec<&'a str>,
    /// path → content after the change; with a context window, each file listed here is
    /// shown only around its change.
    pub new_content: Option<&'a BTreeMap<String, String>>,
}

/// Why a prompt was not built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptOutcome {
    /// Fits; `dropped` relevant-unmodified files were left out to make it fit.
    Fits { dropped: usize },
    /// Too long even with every droppable file removed.
    TooLong { tokens: usize },
}

/// Builds prompts through a tokenizer's chat template.
pub struct PromptBuilder<'t> {
    pub tokenizer: &'t Tokenizer,
    pub template: &'t PromptTemplate,
    pub max_prompt_length: usize,
    /// Lines shown either side of each modified file's change (`None`: whole files).
    pub context_window: Option<usize>,
}

impl<'t> PromptBuilder<'t> {
    pub fn new(
        tokenizer: &'t Tokenizer,
        template: &'t PromptTemplate,
        max_prompt_length: usize,
    ) -> Self {
        PromptBuilder {
            tokenizer,
            template,
            max_prompt_length,
            context_window: None,
        }
    }

    pub fn with_context_window(mut self, lines: Option<usize>) -> Self {
        self.context_window = lines;
        self
    }

    /// The chat messages for `files`.
    pub fn messages(&self, problem: &str, files: &[(&str, &str)]) -> Result<Vec<Message>> {
        let msgs = self
            .template
            .render(problem, files)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        Ok(msgs
            .iter()
            .map(|m| Message::new(m.role, &m.content))
            .collect())
    }

    fn encode(&self, problem: &str, files: &[(&str, &str)]) -> Result<Vec<u32>> {
        let msgs = self.messages(problem, files)?;
        self.tokenizer
            .encode_chat(&msgs, true)
            .map_err(TrainError::from)
    }

    /// Token ids of the prompt with generation header. When too long, drops the droppable
    /// files one at a time (the last in path order first) until it fits; if it never does, the
    /// caller skips the instance and counts it.
    pub fn build(&self, input: &PromptInput<'_>) -> Result<(Option<Vec<u32>>, PromptOutcome)> {
        let windowed: BTreeMap<&str, String> = match (self.context_window, input.new_content) {
            (Some(margin), Some(new)) => input
                .code_context
                .iter()
                .filter_map(|(p, old)| {
                    let new = new.get(p)?;
                    Some((p.as_str(), change_window(old, new, margin)))
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let mut files: Vec<(&str, &str)> = input
            .code_context
            .iter()
            .map(|(p, t)| (p.as_str(), windowed.get(p.as_str()).unwrap_or(t).as_str()))
            .collect();
        let mut droppable: Vec<&str> = input
            .droppable
            .iter()
            .copied()
            .filter(|p| input.code_context.contains_key(*p))
            .collect();
        droppable.sort_unstable();
        let mut dropped = 0;
        loop {
            let ids = self.encode(input.problem_statement, &files)?;
            if ids.len() <= self.max_prompt_length {
                return Ok((Some(ids), PromptOutcome::Fits { dropped }));
            }
            let Some(victim) = droppable.pop() else {
                return Ok((None, PromptOutcome::TooLong { tokens: ids.len() }));
            };
            files.retain(|(p, _)| *p != victim);
            dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/tiny-llama");
        Tokenizer::from_dir(std::path::Path::new(dir)).unwrap()
    }

    #[test]
    fn too_long_prompts_drop_relevant_files_then_skip() {
        let tok = tokenizer();
        let tpl = PromptTemplate::swe_rl();
        let ctx = BTreeMap::from([
            ("a.py".to_string(), "def f():\n    return 1\n".to_string()),
            ("z_rel.py".to_string(), "x = 1\n".repeat(200)),
        ]);
        let input = PromptInput {
            problem_statement: "f is wrong",
            code_context: &ctx,
            droppable: vec!["z_rel.py"],
            new_content: None,
        };
        let full = PromptBuilder::new(&tok, &tpl, 100_000)
            .build(&input)
            .unwrap();
        let n_full = full.0.unwrap().len();
        assert_eq!(full.1, PromptOutcome::Fits { dropped: 0 });
        let trimmed = PromptBuilder::new(&tok, &tpl, n_full - 1)
            .build(&input)
            .unwrap();
        assert_eq!(trimmed.1, PromptOutcome::Fits { dropped: 1 });
        let n_trim = trimmed.0.unwrap().len();
        assert!(n_trim < n_full);
        let skipped = PromptBuilder::new(&tok, &tpl, n_trim - 1)
            .build(&input)
            .unwrap();
        assert!(skipped.0.is_none());
        assert_eq!(skipped.1, PromptOutcome::TooLong { tokens: n_trim });
        // Rendered through the chat template: system, user, then the assistant header.
        let text = tok
            .decode(
                &PromptBuilder::new(&tok, &tpl, 100_000)
                    .build(&input)
                    .unwrap()
                    .0
                    .unwrap(),
                false,
            )
            .unwrap();
        assert!(
            text.contains("system")
                && text.contains("### a.py")
                && text.trim_end().ends_with("assistant<|end_header_id|>"),
            "{text}"
        );
    }

    #[test]
    fn a_context_window_shows_modified_files_around_their_change() {
        let tok = tokenizer();
        let tpl = PromptTemplate::swe_rl();
        let old: String = (0..60).map(|i| format!("v{i} = {i}\n")).collect();
        let ctx = BTreeMap::from([
            ("m.py".to_string(), old.clone()),
            ("rel.py".to_string(), "keep = 1\n".to_string()),
        ]);
        let new = BTreeMap::from([("m.py".to_string(), old.replace("v30 = 30", "v30 = -30"))]);
        let input = PromptInput {
            problem_statement: "v30 has the wrong sign",
            code_context: &ctx,
            droppable: vec!["rel.py"],
            new_content: Some(&new),
        };
        let text = |window| {
            let b = PromptBuilder::new(&tok, &tpl, 100_000).with_context_window(window);
            let ids = b.build(&input).unwrap().0.unwrap();
            (ids.len(), tok.decode(&ids, false).unwrap())
        };
        let (n_whole, whole) = text(None);
        let (n_win, win) = text(Some(2));
        assert!(whole.contains("v0 = 0\n") && whole.contains("v59 = 59"));
        // 55 of the 60 lines are elided (the fixed instructions stay).
        assert!(n_win + 300 < n_whole, "{n_win} vs {n_whole}");
        assert!(
            win.contains("### m.py\n...\nv28 = 28\nv29 = 29\nv30 = 30\nv31 = 31\nv32 = 32\n..."),
            "{win}"
        );
        assert!(!win.contains("v27 = 27") && !win.contains("v33 = 33"));
        // Unmodified files are shown whole.
        assert!(win.contains("### rel.py\nkeep = 1"));
    }
}
