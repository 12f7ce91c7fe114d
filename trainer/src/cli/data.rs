//! `swerl data {stats,show,export,import-swebench}`: inspect and convert datasets.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use datagen::{Dataset, DatasetWriter};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Counts and sizes of a dataset.
    Stats {
        dir: PathBuf,
        /// One JSON line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print record N as JSON.
    Show { dir: PathBuf, n: usize },
    /// Write every record as JSON lines with SWE-bench's field names.
    Export {
        dir: PathBuf,
        /// JSON lines (the only export format).
        #[arg(long)]
        jsonl: bool,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Convert SWE-bench instances (JSONL) into a dataset, reading files from local clones.
    ImportSwebench {
        file: PathBuf,
        /// Directory holding a clone per repository: `owner__name`, `owner/name` or `name`.
        #[arg(long)]
        repos: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Cmd::Stats { dir, json } => stats(&dir, json),
        Cmd::Show { dir, n } => {
            let ds = Dataset::open(&dir)?;
            let inst = ds.get(n)?;
            println!("{}", serde_json::to_string_pretty(&inst)?);
            Ok(())
        }
        Cmd::Export { dir, jsonl, out } => {
            if !jsonl {
                bail!("choose an export format: --jsonl");
            }
            let ds = Dataset::open(&dir)?;
            let sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut w = BufWriter::new(sink);
            for i in 0..ds.len() {
                serde_json::to_writer(&mut w, &datagen::swebench::to_swebench(&ds.get(i)?))?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            Ok(())
        }
        Cmd::ImportSwebench { file, repos, out } => import(&file, &repos, &out),
    }
}

fn stats(dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let ds = Dataset::open(dir)?;
    let mut per_repo: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    let (
        mut lines,
        mut files,
        mut ctx_bytes,
        mut with_issue,
        mut with_tests,
        mut relevant,
        mut bytes,
    ) = (0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    for i in 0..ds.len() {
        bytes += ds.get_bytes(i)?.len();
        let inst = ds.get(i)?;
        *per_repo.entry(inst.repo.clone()).or_default() += 1;
        *per_kind
            .entry(
                serde_json::to_value(inst.kind)?
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_default() += 1;
        lines += inst.stats.lines_added + inst.stats.lines_removed;
        files += inst.stats.files_changed;
        ctx_bytes += inst.code_context.values().map(String::len).sum::<usize>();
        with_issue += usize::from(!inst.linked_issues.is_empty());
        with_tests += usize::from(!inst.test_patch.is_empty());
        relevant += inst.relevant_files.len();
    }
    let n = ds.len().max(1) as f64;
    let v = serde_json::json!({
        "instances": ds.len(), "shards": ds.shards().len(), "record_bytes": bytes,
        "repos": per_repo, "kinds": per_kind,
        "mean_changed_lines": lines as f64 / n, "mean_files_changed": files as f64 / n,
        "mean_context_bytes": ctx_bytes as f64 / n, "mean_relevant_files": relevant as f64 / n,
        "with_linked_issue": with_issue, "with_test_patch": with_tests,
    });
    if json {
        println!("{v}");
        return Ok(());
    }
    println!(
        "{} instances in {} shard(s), {} bytes of records",
        ds.len(),
        ds.shards().len(),
        bytes
    );
    for (k, c) in &per_kind {
        println!("  kind {k:<10} {c}");
    }
    println!("  with linked issue {with_issue}, with test patch {with_tests}");
    println!(
        "  mean changed lines {:.1}, files {:.2}, context {:.0} bytes, relevant files {:.2}",
        lines as f64 / n,
        files as f64 / n,
        ctx_bytes as f64 / n,
        relevant as f64 / n
    );
    println!("  repositories: {}", per_repo.len());
    for (r, c) in per_repo.iter().take(20) {
        println!("    {r:<40} {c}");
    }
    Ok(())
}

fn import(
    file: &std::path::Path,
    repos: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut writer = DatasetWriter::create(out, 10_000, 1 << 30)?;
    let mut opened: HashMap<String, datagen::git::Repo> = HashMap::new();
    let (mut ok, mut failed) = (0usize, 0usize);
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: invalid JSON", file.display(), n + 1))?;
        let name = v
            .get("repo")
            .and_then(|r| r.as_str())
            .with_context(|| format!("{} line {}: no `repo` field", file.display(), n + 1))?
            .to_string();
        if !opened.contains_key(&name) {
            let Some(path) = datagen::swebench::find_clone(repos, &name) else {
                bail!(
                    "no clone of {name} under {} (looked for {}, {name}, and the bare name)",
                    repos.display(),
                    name.replace('/', "__")
                );
            };
            opened.insert(name.clone(), datagen::git::Repo::open(&path)?);
        }
        match datagen::swebench::import_record(&v, &opened[&name], file, n + 1) {
            Ok(inst) => {
                writer.push(&inst)?;
                ok += 1;
            }
            Err(e) => {
                eprintln!("skipped: {e}");
                failed += 1;
            }
        }
    }
    writer.finish()?;
    eprintln!(
        "imported {ok} instance(s), skipped {failed}, into {}",
        out.display()
    );
    if ok == 0 && failed > 0 {
        bail!("no instance could be imported");
    }
    Ok(())
}
