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
    #[arg(long, default_value_t = 120)]
    sft_steps: usize,
    #[arg(long, default_value_t = 30)]
    grpo_steps: usize,
    #[arg(long, default_value_t = 1024)]
    vocab_size: usize,
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
        repo,
        out: args.out,
        vocab_size: args.vocab_size,
        sft_steps: args.sft_steps,
        grpo_steps: args.grpo_steps,
        seed: args.seed,
        progress: !args.quiet,
    };
    let r = quickstart(&opts)?;
    let first = r.sft_losses.first().copied().unwrap_or(f64::NAN);
    let last = r.sft_losses.last().copied().unwrap_or(f64::NAN);
    println!(
        "instances mined: {}, oracle demos: {}",
        r.instances, r.demos
    );
    println!("SFT loss: {first:.3} -> {last:.3}");
    println!(
        "GRPO reward per step: {}",
        trainer::plot::sparkline(&r.rewards)
    );
    for (i, x) in r.rewards.iter().enumerate() {
        println!("  step {:>3}: reward {x:+.4}", i + 1);
    }
    println!("plots: {}/{{reward,loss,kl}}.svg", r.run_dir.display());
    println!(
        "model: {} (try `swerl generate` on it)",
        r.model_dir.display()
    );
    Ok(())
}
