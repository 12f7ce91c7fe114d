//! `swerl quickstart [--repo PATH] [--out DIR]`: mine → tokenizer → tiny Llama-3 → SFT warm-up
//! → GRPO on this machine's CPU, then print and plot the reward curve.

use std::path::PathBuf;

use anyhow::Context;
use trainer::quickstart::{run as quickstart, QuickstartOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Git repository to mine (default: the repository the current directory is in).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Output folder (data, tokenizer, checkpoints, metrics, plots, final model).
    #[arg(long, default_value = "swerl-quickstart")]
    out: PathBuf,
    /// Most SFT warm-up steps (it stops earlier once sampled answers are often well-formed).
    #[arg(long, default_value_t = 400)]
    sft_steps: usize,
    #[arg(long, default_value_t = 30)]
    grpo_steps: usize,
    /// Problems per GRPO step.
    #[arg(long, default_value_t = 8)]
    per_step_problems: usize,
    /// Samples per problem.
    #[arg(long, default_value_t = 8)]
    num_generations: usize,
    /// Sampling temperature of the GRPO rollouts.
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    /// GRPO learning rate.
    #[arg(long, default_value_t = 5e-4)]
    learning_rate: f64,
    /// Lines shown either side of each change in the prompts.
    #[arg(long, default_value_t = 2)]
    context_window: usize,
    /// Longest oracle answer (tokens) kept as a problem; GRPO's max_completion_length.
    #[arg(long, default_value_t = 256)]
    max_completion_length: usize,
    #[arg(long, default_value_t = 2048)]
    vocab_size: usize,
    /// Warm up on the oracle answers only (no misindented copies).
    #[arg(long)]
    no_flawed_demos: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

/// The closest enclosing folder with a `.git`.
fn enclosing_repo() -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .find(|d| d.join(".git").exists())
        .map(PathBuf::from)
        .with_context(|| {
            format!(
                "{} is not inside a git repository; pass --repo",
                cwd.display()
            )
        })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let repo = match args.repo {
        Some(r) => r,
        None => enclosing_repo()?,
    };
    let opts = QuickstartOptions {
        vocab_size: args.vocab_size,
        sft_steps: args.sft_steps,
        grpo_steps: args.grpo_steps,
        per_step_problems: args.per_step_problems,
        num_generations: args.num_generations,
        temperature: args.temperature,
        learning_rate: args.learning_rate,
        context_window: args.context_window,
        max_completion_length: args.max_completion_length,
        flawed_demos: !args.no_flawed_demos,
        seed: args.seed,
        progress: !args.quiet,
        ..QuickstartOptions::new(repo, args.out)
    };
    let r = quickstart(&opts)?;
    let first = r.sft_losses.first().copied().unwrap_or(f64::NAN);
    let last = r.sft_losses.last().copied().unwrap_or(f64::NAN);
    println!(
        "instances mined: {}, problems with an oracle answer: {}",
        r.instances, r.demos
    );
    println!("SFT loss: {first:.3} -> {last:.3}");
    println!(
        "GRPO reward per step: {}",
        trainer::plot::sparkline(&r.rewards)
    );
    for (i, (x, f)) in r.rewards.iter().zip(&r.format_error_rates).enumerate() {
        println!(
            "  step {:>3}: reward {x:+.4}  format errors {:>5.1}%",
            i + 1,
            100.0 * f
        );
    }
    let n = (r.rewards.len() / 2).clamp(1, 5);
    let (before, after) = r.before_after(n);
    println!(
        "SFT warm-up: {} steps, {:.0}% of sampled answers well-formed; {} misindented demos",
        r.sft_losses.len(),
        100.0 * r.well_formed_after_sft,
        r.flawed_demos
    );
    println!(
        "GRPO mean reward: first {n} steps {before:+.3}, last {n} steps {after:+.3} ({:+.3})",
        after - before
    );
    println!("reward curve: {}", r.run_dir.join("reward.svg").display());
    println!(
        "plots: {}/{{reward,loss,kl}}.svg; metrics: {}",
        r.run_dir.display(),
        r.run_dir.join("metrics.jsonl").display()
    );
    println!(
        "model: {} (try `swerl generate` on it)",
        r.model_dir.display()
    );
    Ok(())
}
