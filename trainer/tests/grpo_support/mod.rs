//! The tiny verifiable GRPO task and model the trainer integration tests share.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use model::{Llama, LlamaConfig, LlamaParams};
use runtime::DType;
use trainer::config::{GrpoConfig, LrSchedule};
use trainer::grpo::{LossType, ScaleRewards};
use trainer::train::checkpoint::save_hf_folder;
use trainer::train::{Reward, Scored, Task};

pub const EOS: u32 = 1;

/// Prompts of 3 random tokens; the answer should repeat a target token that depends on the
/// prompt's first token's parity (7 when even, 9 when odd). Reward: fraction of the 4
/// completion slots holding the target.
#[derive(Default)]
pub struct Parity {
    drawn: u64,
    batch: Vec<Vec<u32>>,
}

fn target(prompt: &[u32]) -> u32 {
    if prompt[0].is_multiple_of(2) {
        7
    } else {
        9
    }
}

impl Reward for Parity {
    fn score(&self, problem: usize, completion: &[u32]) -> Scored {
        let t = target(&self.batch[problem]);
        let hits = completion.iter().filter(|&&x| x == t).count();
        Scored {
            reward: hits as f64 / 4.0,
            format_error: None,
        }
    }
}

impl Task for Parity {
    fn next_problems(&mut self, n: usize) -> trainer::train::Result<Vec<Vec<u32>>> {
        self.batch = (0..n)
            .map(|_| {
                // Seeded by the running problem count so a resumed task draws what the
                // uninterrupted one would have.
                let mut rng = runtime::Rng::new(1000 + self.drawn);
                self.drawn += 1;
                (0..3).map(|_| 2 + rng.below(14) as u32).collect()
            })
            .collect();
        Ok(self.batch.clone())
    }
    fn cursor(&self) -> serde_json::Value {
        serde_json::json!(self.drawn)
    }
    fn restore(&mut self, c: &serde_json::Value) -> trainer::train::Result<()> {
        self.drawn = c.as_u64().expect("cursor is a number");
        Ok(())
    }
}

/// A random 2-layer Llama (vocab 32, 4 heads, 2 KV heads) small enough for debug-build tests.
pub fn tiny_model(seed: u64) -> Llama {
    let c = LlamaConfig::new(32, 2, 4, 2, 64, 16, 64, false).unwrap();
    Llama::random(c, DType::F32, seed).unwrap()
}

/// Saves `tiny_model(3)` as an HF folder `dir/init` and returns its path.
pub fn init_model(dir: &Path) -> PathBuf {
    let init = dir.join("init");
    save_hf_folder(&tiny_model(3), &init, None).unwrap();
    init
}

/// The trainer's defaults for `model`, writing to `out`; the task supplies the problems, so
/// `data_dir` is never read.
pub fn default_config(model: &Path, out: &Path) -> GrpoConfig {
    let mut t = toml::Table::new();
    t.insert("model".into(), model.display().to_string().into());
    t.insert("data_dir".into(), "unused".into());
    t.insert("output_dir".into(), out.display().to_string().into());
    trainer::config::from_table(t).unwrap()
}

/// The small run the parallel tests compare across ranks: 4 problems × 4 samples of 5 tokens,
/// two PPO iterations, clipping at 0.5, micro-batches of 3 that do not divide the rows.
pub fn parallel_config(model: &Path, out: &Path) -> GrpoConfig {
    let mut c = default_config(model, out);
    c.per_step_problems = 4;
    c.num_generations = 4;
    c.max_completion_length = 5;
    c.max_prompt_length = 16;
    c.learning_rate = 1e-2;
    c.lr_schedule = LrSchedule::Constant;
    c.warmup_steps = 0;
    c.micro_batch = 3;
    c.seed = 11;
    c.beta = 0.04;
    c.num_iterations = 2;
    c.max_grad_norm = 0.5;
    c
}

/// The ZeRO-1 tests' run: 6 problems (they split over 2 and 3 DP ranks; 3 does not divide the
/// parameter count, so ZeRO-1 shards straddle tensors and the last one is short), weight
/// decay, `bnpo`, and clipping at `max_grad_norm` (0: none).
pub fn zero_config(model: &Path, out: &Path, max_grad_norm: f64) -> GrpoConfig {
    let mut c = parallel_config(model, out);
    c.per_step_problems = 6;
    c.weight_decay = 0.1;
    c.max_grad_norm = max_grad_norm;
    c.loss_type = LossType::Bnpo;
    c.scale_rewards = ScaleRewards::Group;
    c.save_steps = 0;
    c
}

/// Every tensor's values as bits, for bit-for-bit comparisons.
pub fn param_bits(p: &LlamaParams) -> Vec<Vec<u32>> {
    p.tensors()
        .iter()
        .map(|t| {
            t.to_f32_vec()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        })
        .collect()
}
