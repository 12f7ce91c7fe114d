//! `swerl mine`: git histories (+ GH Archive events) → a sharded SWE-RL dataset.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use datagen::{DatasetWriter, Events, FilterConfig, MineOptions, Miner};

#[derive(clap::Args)]
pub struct Args {
    /// Local clones (bare or not) to mine. Only history reachable from each clone's HEAD
    /// is mined: PRs merged only into other branches are skipped.
    #[arg(required = true)]
    pub repos: Vec<PathBuf>,
    /// Output dataset directory (must not already hold shards).
    #[arg(long)]
    pub out: PathBuf,
    /// Directory of GH Archive hourly `.json.gz` files for PR/issue text and hints.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Also mine every non-merge commit, not only merged PRs.
    #[arg(long)]
    pub all_commits: bool,
    /// Worker threads extracting and serialising instances, besides the thread walking
    /// history (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// `owner/name` to record (single repository only; default: from `remote.origin.url`).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value_t = FilterConfig::default().max_files)]
    pub max_files: usize,
    #[arg(long, default_value_t = FilterConfig::default().max_changed_lines)]
    pub max_lines: usize,
    #[arg(long, default_value_t = FilterConfig::default().max_file_bytes)]
    pub max_file_bytes: usize,
    /// Relevant unmodified files added to each instance's context.
    #[arg(long, default_value_t = FilterConfig::default().relevant_k)]
    pub relevant_k: usize,
    /// Extra repositories (`owner/name`) to exclude, on top of SWE-bench's 12.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Do not exclude SWE-bench's repositories.
    #[arg(long)]
    pub no_decontaminate: bool,
    /// Records per shard file.
    #[arg(long, default_value_t = 10_000)]
    pub shard_records: usize,
    /// Print the final report as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.name.is_some() && args.repos.len() != 1 {
        bail!(
            "--name needs exactly one repository, got {}",
            args.repos.len()
        );
    }
    let mut filter = FilterConfig {
        max_files: args.max_files,
        max_changed_lines: args.max_lines,
        max_file_bytes: args.max_file_bytes,
        relevant_k: args.relevant_k,
        ..FilterConfig::default()
    };
    if args.no_decontaminate {
        filter.decontaminate.clear();
    }
    filter.decontaminate.extend(args.exclude.iter().cloned());
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let events = match &args.events {
        Some(dir) => {
            let mut names = HashSet::new();
            for r in &args.repos {
                let repo = datagen::git::Repo::open(r)?;
                names.insert(
                    args.name
                        .clone()
                        .unwrap_or_else(|| datagen::mine::repo_name(&repo)),
                );
            }
            Some(
                Events::load(dir, Some(&names))
                    .with_context(|| format!("loading GH Archive events from {}", dir.display()))?,
            )
        }
        None => None,
    };
    let opts = MineOptions {
        all_commits: args.all_commits,
        jobs,
        filter,
        ..MineOptions::default()
    };
    let mut miner = Miner::new(opts, events)?;
    let mut writer = DatasetWriter::create(&args.out, args.shard_records, 1 << 30)?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .expect("static template"),
    );
    let start = Instant::now();
    for repo in &args.repos {
        bar.set_prefix(repo.display().to_string());
        let mut progress = |r: &datagen::Report| {
            let rate = r.commits_walked as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{}: {} commits ({rate:.0}/s), {} units, {} kept",
                repo.display(),
                r.commits_walked,
                r.units,
                r.kept
            ));
            bar.tick();
        };
        miner
            .mine_repo_records(
                repo,
                args.name.as_deref(),
                &mut |record| writer.push_bytes(record),
                &mut progress,
            )
            .with_context(|| format!("mining {}", repo.display()))?;
    }
    let shards = writer.finish()?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let report = &miner.report;
    let report_json = serde_json::to_string_pretty(report)?;
    let tmp = args.out.join("report.json.tmp");
    std::fs::write(&tmp, &report_json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, args.out.join("report.json"))
        .with_context(|| format!("renaming {}", tmp.display()))?;
    if args.json {
        let mut v = serde_json::to_value(report)?;
        v["seconds"] = serde_json::json!(secs);
        v["commits_per_s"] = serde_json::json!(report.commits_walked as f64 / secs.max(1e-9));
        v["shards"] = serde_json::json!(shards.len());
        println!("{v}");
    } else {
        eprint!("{}", report.table());
        eprintln!(
            "{:.1} s, {:.0} commits/s, {} shard(s) in {}",
            secs,
            report.commits_walked as f64 / secs.max(1e-9),
            shards.len(),
            args.out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &std::path::Path, args: &[&str]) {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "A")
            .env("GIT_AUTHOR_EMAIL", "a@example.com")
            .env("GIT_COMMITTER_NAME", "C")
            .env("GIT_COMMITTER_EMAIL", "c@example.com")
            .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
            .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn mine_writes_dataset_and_report_then_data_commands_read_it() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("r");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(
            &repo,
            &["remote", "add", "origin", "https://github.com/o/r.git"],
        );
        std::fs::write(repo.join("a.py"), "x = 1\n").unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "init"]);
        std::fs::write(repo.join("a.py"), "x = 2\n").unwrap();
        git(&repo, &["commit", "-q", "-am", "Set x (#5)\n\nFixes #4"]);
        let out = tmp.path().join("ds");
        let args = Args {
            repos: vec![repo],
            out: out.clone(),
            events: None,
            all_commits: false,
            jobs: Some(1),
            name: None,
            max_files: 50,
            max_lines: 2000,
            max_file_bytes: 1 << 20,
            relevant_k: 3,
            exclude: vec![],
            no_decontaminate: false,
            shard_records: 10,
            json: true,
        };
        run(args).unwrap();
        let report: datagen::Report =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!((report.units, report.kept), (1, 1));
        let ds = datagen::Dataset::open(&out).unwrap();
        let inst = ds.get(0).unwrap();
        assert_eq!(
            (inst.id.as_str(), inst.pr_number, inst.linked_issues.clone()),
            ("o__r-5", Some(5), vec![4])
        );
        let jsonl = tmp.path().join("x.jsonl");
        use super::super::data;
        data::run(data::Args {
            command: data::Cmd::Export {
                dir: out.clone(),
                jsonl: true,
                out: Some(jsonl.clone()),
            },
        })
        .unwrap();
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&jsonl).unwrap().trim()).unwrap();
        assert_eq!(line["instance_id"], "o__r-5");
        assert_eq!(line["patch"], inst.oracle_patch.as_str());
        data::run(data::Args {
            command: data::Cmd::Stats {
                dir: out.clone(),
                json: true,
            },
        })
        .unwrap();
        // A second run into the same directory is refused rather than mixing datasets.
        let again = Args {
            repos: vec![tmp.path().join("r")],
            out,
            events: None,
            all_commits: false,
            jobs: Some(1),
            name: None,
            max_files: 50,
            max_lines: 2000,
            max_file_bytes: 1 << 20,
            relevant_k: 3,
            exclude: vec![],
            no_decontaminate: false,
            shard_records: 10,
            json: true,
        };
        assert!(run(again)
            .unwrap_err()
            .to_string()
            .contains("already holds"));
    }
}
