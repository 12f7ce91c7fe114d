//! `swerl reward`: score completions with the SWE-RL reward, in parallel.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde::Deserialize;
use trainer::reward::{CaseReport, RewardCase};

#[derive(clap::Args)]
pub struct Args {
    /// JSONL cases (`code_context`, `oracle_new_content`, and `output` or `pred_new_content`),
    /// or a directory whose *.jsonl files hold such cases.
    #[arg(long)]
    data: PathBuf,
    /// JSONL completions `{"instance_id", "output"}` scored against the cases of `--data`
    /// with the same `instance_id` (their own `output`, if any, is ignored).
    #[arg(long)]
    completions: Option<PathBuf>,
    /// Worker threads; 0 uses every core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also print each file's predicted and oracle patch.
    #[arg(long)]
    patches: bool,
}

#[derive(Deserialize)]
struct Completion {
    instance_id: String,
    output: String,
}

fn jsonl_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", path.display()))?;
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    if files.is_empty() {
        bail!("{}: no .jsonl files", path.display());
    }
    Ok(files)
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a valid case", path.display(), n + 1))?;
        out.push(v);
    }
    Ok(out)
}

fn load_cases(args: &Args) -> anyhow::Result<Vec<RewardCase>> {
    let mut cases = Vec::new();
    for f in jsonl_files(&args.data)? {
        cases.extend(read_jsonl::<RewardCase>(&f)?);
    }
    let Some(path) = &args.completions else {
        return Ok(cases);
    };
    let mut by_id = HashMap::new();
    for (i, c) in cases.iter().enumerate() {
        let id = c.instance_id.as_deref().with_context(|| {
            format!(
                "{}: case {} has no instance_id to key completions",
                args.data.display(),
                i + 1
            )
        })?;
        by_id.insert(id.to_string(), i);
    }
    read_jsonl::<Completion>(path)?
        .into_iter()
        .map(|c| {
            let i = *by_id.get(&c.instance_id).with_context(|| {
                format!(
                    "{}: unknown instance_id {:?}",
                    path.display(),
                    c.instance_id
                )
            })?;
            let mut case = cases[i].clone();
            case.output = Some(c.output);
            case.pred_new_content = None;
            Ok(case)
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cases = load_cases(&args)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("starting the worker threads")?;
    let start = Instant::now();
    let outcomes = pool.install(|| {
        cases
            .par_iter()
            .enumerate()
            .map(|(i, c)| c.score().with_context(|| format!("case {}", i + 1)))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let elapsed = start.elapsed().as_secs_f64();

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for (c, o) in cases.iter().zip(&outcomes) {
        let report = CaseReport::new(c.instance_id.as_deref(), o, args.patches);
        serde_json::to_writer(&mut out, &report)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;

    let n = outcomes.len();
    let errors = outcomes.iter().filter(|o| o.format_error.is_some()).count();
    let mean = outcomes.iter().map(|o| o.reward).sum::<f64>() / n.max(1) as f64;
    eprintln!(
        "{n} cases: mean reward {mean:.6}, format errors {errors} ({:.2}%), {elapsed:.3} s ({:.1} cases/s, {} threads)",
        100.0 * errors as f64 / n.max(1) as f64,
        n as f64 / elapsed.max(1e-9),
        pool.current_num_threads()
    );
    Ok(())
}
