//! `swerl bench grpo`: one GRPO step of the trainer (`train::grpo_step`, the code `swerl
//! train` runs) on a random-weight model with synthetic prompts, split into its phases:
//! generation, reward, log-probs (old policy + reference), policy forward + backward, AdamW.

use std::collections::BTreeMap;

use anyhow::bail;
use model::optim::AdamW;
use model::{Llama, LlamaConfig};
use runtime::{DType, Rng};
use trainer::config::GrpoConfig;
use trainer::reward::calculate_search_replace_reward;
use trainer::train::step::{grpo_step, StepReport, Timings};
use trainer::train::{policy::deep_copy, Learner, Reward, Scored, StepSettings};

use super::bench::named_config;

#[derive(clap::Args)]
pub struct GrpoArgs {
    /// Model shape (see `bench decode`).
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Prompts per step.
    #[arg(long, default_value_t = 2)]
    pub problems: usize,
    /// Completions per prompt.
    #[arg(long, default_value_t = 4)]
    pub generations: usize,
    /// Prompt tokens.
    #[arg(long, default_value_t = 128)]
    pub prompt_len: usize,
    /// Completion tokens (no EOS: every completion runs to this length).
    #[arg(long, default_value_t = 64)]
    pub completion_len: usize,
    /// KL weight; > 0 holds a reference model and computes its log-probs.
    #[arg(long, default_value_t = 0.04)]
    pub beta: f64,
    /// Updates per batch; > 1 computes the old policy's log-probs.
    #[arg(long, default_value_t = 2)]
    pub num_iterations: usize,
    /// Timed steps (after one untimed warm-up step); the median of each phase is reported.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Also print one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// The SWE-RL reward on a SEARCH/REPLACE answer whose replacement spells the completion's
/// token ids, so every step parses, applies and diffs real text and the rewards differ.
struct SyntheticReward {
    context: BTreeMap<String, String>,
    oracle: BTreeMap<String, String>,
}

impl SyntheticReward {
    fn new() -> Self {
        let old = "def f(x):\n    return x + 1\n".to_string();
        let new = "def f(x):\n    return x - 1\n".to_string();
        SyntheticReward {
            context: BTreeMap::from([("a.py".to_string(), old)]),
            oracle: BTreeMap::from([("a.py".to_string(), new)]),
        }
    }
}

impl Reward for SyntheticReward {
    fn score(&self, _problem: usize, completion: &[u32]) -> Scored {
        let body: Vec<String> = completion.iter().map(|t| format!("{}", t % 97)).collect();
        let text = format!(
            "<think>\nedit f\n</think>\n<solution>\n```\n### a.py\n<<<<<<< SEARCH\n    return x + 1\n=======\n    return x - {}\n>>>>>>> REPLACE\n```\n</solution>",
            body.join(" ")
        );
        let out = calculate_search_replace_reward(&self.context, &self.oracle, &text);
        Scored {
            reward: out.reward,
            format_error: out.format_error.as_ref().map(|e| e.kind()),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn settings(a: &GrpoArgs) -> anyhow::Result<GrpoConfig> {
    let mut t = toml::Table::new();
    t.insert("model".into(), "synthetic".into());
    t.insert("data_dir".into(), "synthetic".into());
    let mut c: GrpoConfig = trainer::config::from_table(t)?;
    c.per_step_problems = a.problems;
    c.num_generations = a.generations;
    c.max_completion_length = a.completion_len;
    c.max_prompt_length = a.prompt_len;
    c.beta = a.beta;
    c.num_iterations = a.num_iterations;
    c.learning_rate = 1e-5;
    c.micro_batch = a.problems * a.generations;
    c.validate()?;
    Ok(c)
}

pub fn run(a: GrpoArgs) -> anyhow::Result<()> {
    let cfg: LlamaConfig = named_config(&a.config)?;
    if a.prompt_len == 0 || a.completion_len == 0 || a.steps == 0 {
        bail!("--prompt-len, --completion-len and --steps must be positive");
    }
    let gc = settings(&a)?;
    let model = Llama::random(cfg.clone(), DType::F32, 0)?;
    let reference = if a.beta != 0.0 {
        Some(Llama::from_params(cfg.clone(), deep_copy(&model.params)?)?)
    } else {
        None
    };
    let opt = AdamW::new(&model, gc.optim_config())?;
    let mut learner = Learner::new(model, opt, reference)?;
    // No EOS: every completion has exactly `completion_len` tokens.
    let s = StepSettings::from_config(&gc, Vec::new());
    let reward = SyntheticReward::new();
    let mut rng = Rng::new(3);
    let prompts: Vec<Vec<u32>> = (0..a.problems)
        .map(|_| {
            (0..a.prompt_len)
                .map(|_| rng.below(cfg.vocab_size as u64) as u32)
                .collect()
        })
        .collect();
    println!(
        "bench grpo: config {} ({:.1}M params, fp32), {} prompts x {} generations, prompt {} + completion {} tokens, beta {}, num_iterations {}, {} threads",
        a.config,
        cfg.num_params() as f64 / 1e6,
        a.problems,
        a.generations,
        a.prompt_len,
        a.completion_len,
        a.beta,
        a.num_iterations,
        rayon::current_num_threads()
    );
    let mut step = |seed: u64| -> anyhow::Result<StepReport> {
        Ok(grpo_step(
            &mut learner,
            &s,
            &prompts,
            &reward,
            seed,
            gc.learning_rate,
        )?)
    };
    step(0)?;
    let mut runs: Vec<(Timings, StepReport)> = Vec::new();
    for i in 0..a.steps {
        let r = step(i as u64 + 1)?;
        runs.push((r.timings, r));
    }
    let pick = |f: fn(&Timings) -> f64| median(runs.iter().map(|(t, _)| f(t)).collect());
    let (gen, rew, lp, bwd, opt) = (
        pick(|t| t.generate),
        pick(|t| t.reward),
        pick(|t| t.logprobs),
        pick(|t| t.backward),
        pick(|t| t.optimizer),
    );
    let total = gen + rew + lp + bwd + opt;
    let last = &runs[runs.len() - 1].1;
    let n_seq = a.problems * a.generations;
    let seq_tokens = (n_seq * (a.prompt_len + a.completion_len)) as f64;
    // Old-policy and reference passes each run one forward over every sequence.
    let lp_passes = usize::from(a.num_iterations > 1) + usize::from(a.beta != 0.0);
    let rate = |n: f64, t: f64| if t > 0.0 { n / t } else { 0.0 };
    let rows = [
        (
            "generation",
            gen,
            rate(last.generated_tokens as f64, gen),
            "generated tokens/s",
        ),
        ("reward", rew, rate(n_seq as f64, rew), "completions/s"),
        (
            "log-probs (old + ref)",
            lp,
            rate(seq_tokens * lp_passes as f64, lp),
            "tokens/s",
        ),
        (
            "policy fwd + bwd",
            bwd,
            rate(last.trained_tokens as f64, bwd),
            "tokens/s",
        ),
        (
            "AdamW",
            opt,
            rate((cfg.num_params() * a.num_iterations) as f64, opt),
            "params/s",
        ),
    ];
    println!(
        "{:<22} {:>9} {:>6} {:>14}",
        "phase", "s/step", "share", "rate"
    );
    for (name, t, r, unit) in rows {
        println!(
            "{name:<22} {t:>9.3} {:>5.1}% {r:>14.1} {unit}",
            100.0 * t / total
        );
    }
    println!(
        "{:<22} {total:>9.3} (median of {} steps per phase)",
        "step", a.steps
    );
    if a.json {
        let j = serde_json::json!({
            "bench": "grpo", "config": a.config, "problems": a.problems,
            "generations": a.generations, "prompt_len": a.prompt_len,
            "completion_len": a.completion_len, "beta": a.beta,
            "num_iterations": a.num_iterations, "steps": a.steps,
            "seconds": {"generate": gen, "reward": rew, "logprobs": lp, "backward": bwd,
                        "optimizer": opt, "total": total},
            "generation_tokens_per_s": rate(last.generated_tokens as f64, gen),
            "reward_completions_per_s": rate(n_seq as f64, rew),
            "logprob_tokens_per_s": rate(seq_tokens * lp_passes as f64, lp),
            "train_tokens_per_s": rate(last.trained_tokens as f64, bwd),
            "optimizer_params_per_s": rate((cfg.num_params() * a.num_iterations) as f64, opt),
        });
        println!("{j}");
    }
    Ok(())
}
