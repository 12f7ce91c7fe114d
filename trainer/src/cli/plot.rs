//! `swerl plot RUN_DIR`: reward / loss / KL curves of a training run as SVG.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A run folder holding `metrics.jsonl` (the `output_dir` of `swerl train`).
    run_dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    for p in trainer::plot::plot_run(&args.run_dir)? {
        println!("{}", p.display());
    }
    Ok(())
}
