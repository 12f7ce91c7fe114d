//! The SWE-RL task: mined instances in seeded epoch order → chat prompts (too-long ones
//! trimmed or skipped and counted) → completions scored by the SWE-RL reward.

use std::collections::BTreeMap;

use datagen::{Dataset, Instance};
use model::Tokenizer;
use serde::{Deserialize, Serialize};

use super::prompt::{PromptBuilder, PromptInput, PromptOutcome};
use super::run::Task;
use super::step::{Reward, Scored};
use super::{Result, TrainError};
use crate::prompt::PromptTemplate;
use crate::reward::calculate_search_replace_reward;

/// Where the task is in the data: epoch `epoch`'s shuffled order, next index `pos`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: u64,
    pub pos: usize,
    pub skipped: usize,
}

/// What the reward needs of one problem.
struct Problem {
    code_context: BTreeMap<String, String>,
    oracle_new_content: BTreeMap<String, String>,
}

pub struct SweTask {
    data: Dataset,
    tokenizer: Tokenizer,
    template: PromptTemplate,
    max_prompt_length: usize,
    seed: u64,
    eos_token_ids: Vec<u32>,
    context_window: Option<usize>,
    cursor: Cursor,
    order: Vec<usize>,
    batch: Vec<Problem>,
}

fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl SweTask {
    pub fn new(
        data: Dataset,
        tokenizer: Tokenizer,
        template: PromptTemplate,
        max_prompt_length: usize,
        seed: u64,
        eos_token_ids: Vec<u32>,
    ) -> Result<Self> {
        if data.is_empty() {
            return Err(TrainError::Invalid("the dataset has no instances".into()));
        }
        let order = data.indices(epoch_seed(seed, 0), 0, 1);
        Ok(SweTask {
            data,
            tokenizer,
            template,
            max_prompt_length,
            seed,
            eos_token_ids,
            context_window: None,
            cursor: Cursor::default(),
            order,
            batch: Vec::new(),
        })
    }

    /// Shows modified files only around their change (see `GrpoConfig::context_window`).
    pub fn with_context_window(mut self, lines: Option<usize>) -> Self {
        self.context_window = lines;
        self
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The prompt of `inst`, or `None` when it cannot fit.
    pub fn prompt(&self, inst: &Instance) -> Result<Option<Vec<u32>>> {
        let builder = PromptBuilder::new(&self.tokenizer, &self.template, self.max_prompt_length)
            .with_context_window(self.context_window);
        let droppable = inst
            .relevant_files
            .iter()
            .map(|r| r.path.as_str())
            .filter(|p| !inst.oracle_new_content.contains_key(*p))
            .collect();
        let input = PromptInput {
            problem_statement: &inst.problem_statement,
            code_context: &inst.code_context,
            droppable,
            new_content: Some(&inst.oracle_new_content),
        };
        let (ids, outcome) = builder.build(&input)?;
        Ok(match outcome {
            PromptOutcome::Fits { .. } => ids,
            PromptOutcome::TooLong { .. } => None,
        })
    }

    /// Completion tokens as text: EOS ids removed, special tokens such as `<think>` kept.
    pub fn decode(&self, completion: &[u32]) -> String {
        let ids: Vec<u32> = completion
            .iter()
            .copied()
            .filter(|t| !self.eos_token_ids.contains(t))
            .collect();
        self.tokenizer.decode(&ids, false).unwrap_or_default()
    }
}

impl Reward for SweTask {
    fn score(&self, problem: usize, completion: &[u32]) -> Scored {
        let p = &self.batch[problem];
        let text = self.decode(completion);
        let out = calculate_search_replace_reward(&p.code_context, &p.oracle_new_content, &text);
        Scored {
            reward: out.reward,
            format_error: out.format_error.as_ref().map(|e| e.kind()),
        }
    }
}

impl Task for SweTask {
    fn next_problems(&mut self, n: usize) -> Result<Vec<Vec<u32>>> {
        let mut prompts = Vec::with_capacity(n);
        self.batch.clear();
        let mut since_hit = 0usize;
        while prompts.len() < n {
            if self.cursor.pos == self.order.len() {
                self.cursor.epoch += 1;
                self.cursor.pos = 0;
                self.order = self
                    .data
                    .indices(epoch_seed(self.seed, self.cursor.epoch), 0, 1);
            }
            if since_hit > self.order.len() {
                return Err(TrainError::Invalid(format!(
                    "no instance of the dataset has a prompt within max_prompt_length = {}",
                    self.max_prompt_length
                )));
            }
            let inst = self.data.get(self.order[self.cursor.pos])?;
            self.cursor.pos += 1;
            since_hit += 1;
            match self.prompt(&inst)? {
                Some(ids) => {
                    prompts.push(ids);
                    self.batch.push(Problem {
                        code_context: inst.code_context,
                        oracle_new_content: inst.oracle_new_content,
                    });
                    since_hit = 0;
                }
                None => self.cursor.skipped += 1,
            }
        }
        Ok(prompts)
    }

    fn cursor(&self) -> serde_json::Value {
        serde_json::to_value(self.cursor).expect("cursor serialises")
    }

    fn restore(&mut self, v: &serde_json::Value) -> Result<()> {
        let c: Cursor = serde_json::from_value(v.clone())
            .map_err(|e| TrainError::Checkpoint(format!("data cursor {v}: {e}")))?;
        self.order = self.data.indices(epoch_seed(self.seed, c.epoch), 0, 1);
        if c.pos > self.order.len() {
            return Err(TrainError::Checkpoint(format!(
                "data cursor at {} but the dataset has {} instances",
                c.pos,
                self.order.len()
            )));
        }
        self.cursor = c;
        Ok(())
    }

    fn skipped(&self) -> usize {
        self.cursor.skipped
    }
}
