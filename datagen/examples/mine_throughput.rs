//! The work of `swerl mine --all-commits` without the CLI (for profiling the miner alone):
//!     cargo run --release -p datagen --example mine_throughput -- REPO OUT_DIR [JOBS] [K]
//! Prints the filter report's counts and commits/s.

use std::path::PathBuf;
use std::time::Instant;

use datagen::{DatasetWriter, FilterConfig, MineOptions, Miner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: mine_throughput REPO OUT_DIR [JOBS] [RELEVANT_K]".into());
    }
    let (repo, out) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let jobs = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let relevant_k = args
        .get(4)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(FilterConfig::default().relevant_k);
    let opts = MineOptions {
        all_commits: true,
        jobs,
        filter: FilterConfig {
            relevant_k,
            ..FilterConfig::default()
        },
        ..MineOptions::default()
    };
    let mut miner = Miner::new(opts, None)?;
    let mut writer = DatasetWriter::create(&out, 10_000, 1 << 30)?;
    let start = Instant::now();
    miner.mine_repo_records(&repo, None, &mut |r| writer.push_bytes(r), &mut |_| {})?;
    writer.finish()?;
    let secs = start.elapsed().as_secs_f64();
    let r = &miner.report;
    println!(
        "{} commits, {} units, {} kept in {secs:.2} s ({:.0} commits/s)",
        r.commits_walked,
        r.units,
        r.kept,
        r.commits_walked as f64 / secs
    );
    Ok(())
}
