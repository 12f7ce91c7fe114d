//! `swerl train --config FILE [--resume DIR|latest] [--key value ...]`: GRPO on mined data.

use std::path::PathBuf;

use anyhow::Context;
use datagen::Dataset;
use model::{Llama, Tokenizer};
use runtime::comm::ThreadGroup;
use trainer::config::GrpoConfig;
use trainer::dp::DataParallel;
use trainer::prompt::PromptTemplate;
use trainer::train::{checkpoint, SweTask, Trainer};

mod tp;

#[derive(clap::Args)]
pub struct Args {
    /// TOML config (every key can also be given as `--key value`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from a checkpoint folder, or `latest` in the output folder.
    #[arg(long)]
    resume: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Data-parallel ranks as threads of this process (CPU). Launched jobs (`swerl launch`,
    /// torchrun, srun with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT) run one rank per process.
    #[arg(long, default_value_t = 1)]
    dp: usize,
    /// Tensor-parallel ranks.
    #[arg(long, default_value_t = 1)]
    tp: usize,
    /// Collectives of a launched job: `tcp` (CPU) or `nccl` (a `--features cuda` build).
    #[arg(long, default_value = "tcp")]
    dist_backend: String,
    /// `--key value` overrides of config keys.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    overrides: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = GrpoConfig::load(args.config.as_deref(), &args.overrides)?;
    anyhow::ensure!(args.tp >= 1, "--tp must be at least 1");
    anyhow::ensure!(args.dp >= 1, "--dp must be at least 1");
    let cuda = match args.dist_backend.as_str() {
        "tcp" => false,
        "nccl" => true,
        other => anyhow::bail!("unknown --dist-backend `{other}` (tcp, nccl)"),
    };
    if args.tp > 1 {
        anyhow::ensure!(
            cfg.overlap_grad_sync != Some(true),
            "overlap_grad_sync = true is not implemented for --tp {}: the replicated K/V \
             gradients are summed over the TP group after the backward",
            args.tp
        );
        return tp::run(&args, cfg, cuda);
    }
    if let Some(dp) = DataParallel::from_env(cuda)? {
        anyhow::ensure!(
            args.dp == 1,
            "--dp {} with a launcher's RANK/WORLD_SIZE set: the launcher already starts one rank per process",
            args.dp
        );
        return train_rank(&args, cfg, Some(dp));
    }
    if args.dp == 1 {
        return train_rank(&args, cfg, None);
    }
    let comms = ThreadGroup::new(args.dp)?;
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|s| {
        let hs: Vec<_> = comms
            .into_iter()
            .map(|c| {
                let (args, cfg) = (&args, cfg.clone());
                s.spawn(move || train_rank(args, cfg, Some(DataParallel::new(Box::new(c)))))
            })
            .collect();
        hs.into_iter()
            .enumerate()
            .map(|(r, h)| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("rank {r} panicked")))
            })
            .collect()
    });
    // Report the root cause: a rank that failed on its own, not one that saw a peer leave.
    let mut errs: Vec<(usize, anyhow::Error)> = results
        .into_iter()
        .enumerate()
        .filter_map(|(r, x)| x.err().map(|e| (r, e)))
        .collect();
    errs.sort_by_key(|(_, e)| format!("{e:#}").contains("left the group"));
    match errs.into_iter().next() {
        Some((r, e)) => Err(e.context(format!("data-parallel rank {r}"))),
        None => Ok(()),
    }
}

/// One rank's run (the whole run without `dp`); rank 0 prints the summary.
fn train_rank(args: &Args, cfg: GrpoConfig, dp: Option<DataParallel>) -> anyhow::Result<()> {
    let resume = resume_dir(args, &cfg)?;
    let model_dir = resume.clone().unwrap_or_else(|| cfg.model.clone());
    let (task, eos) = swe_task(&cfg, &model_dir)?;
    let (overlap, bucket_bytes) = (cfg.overlap_grad_sync, cfg.bucket_bytes());
    let mut trainer = match &resume {
        Some(dir) => Trainer::resume(cfg, dir, task, eos)?,
        None => {
            let model = Llama::load(&cfg.model)?;
            Trainer::new(cfg, model, task, eos)?
        }
    };
    if let Some(mut dp) = dp {
        dp.bucket_bytes = bucket_bytes;
        if let Some(on) = overlap {
            dp.set_overlap(on)?;
        }
        trainer = trainer.with_dp(dp);
    }
    let metrics = trainer.run(!args.quiet)?;
    if trainer.is_main() {
        summary(&metrics, &trainer.cfg.output_dir);
    }
    Ok(())
}

/// The checkpoint `--resume` names (`latest`: the newest in the output folder).
fn resume_dir(args: &Args, cfg: &GrpoConfig) -> anyhow::Result<Option<PathBuf>> {
    Ok(match args.resume.as_deref() {
        None => None,
        Some("latest") => Some(
            checkpoint::latest(&cfg.output_dir)?
                .with_context(|| format!("no checkpoint in {}", cfg.output_dir.display()))?,
        ),
        Some(dir) => Some(PathBuf::from(dir)),
    })
}

/// The SWE-RL task over `cfg.data_dir` with the tokenizer of `model_dir`, and its EOS ids.
fn swe_task(cfg: &GrpoConfig, model_dir: &std::path::Path) -> anyhow::Result<(SweTask, Vec<u32>)> {
    let tokenizer = Tokenizer::from_dir(model_dir)?;
    let data = Dataset::open(&cfg.data_dir)
        .with_context(|| format!("opening the dataset {}", cfg.data_dir.display()))?;
    let eos = eos_ids(model_dir, &tokenizer)?;
    let template = match &cfg.prompt_template {
        Some(p) => PromptTemplate::from_file(p)?,
        None => PromptTemplate::swe_rl(),
    };
    let task = SweTask::new(
        data,
        tokenizer,
        template,
        cfg.max_prompt_length,
        cfg.seed,
        eos.clone(),
    )?
    .with_context_window(cfg.context_window);
    Ok((task, eos))
}

/// Rank 0's last-step line and where the outputs are.
fn summary(metrics: &[trainer::train::metrics::StepMetrics], out: &std::path::Path) {
    if let Some(m) = metrics.last() {
        eprintln!(
            "step {}: reward {:.4} (min {:.3}, max {:.3}), format errors {:.1}%, loss {:.5}, kl {:.5}",
            m.step,
            m.reward_mean,
            m.reward_min,
            m.reward_max,
            100.0 * m.format_error_rate,
            m.loss,
            m.kl
        );
    }
    eprintln!(
        "metrics: {}; checkpoints in {}",
        out.join("metrics.jsonl").display(),
        out.display()
    );
}

/// The model's EOS ids (config.json), plus the tokenizer's `<|eot_id|>` when it has one.
pub fn eos_ids(model_dir: &std::path::Path, tok: &Tokenizer) -> anyhow::Result<Vec<u32>> {
    let c = model::LlamaConfig::from_file(&model_dir.join("config.json"))?;
    let mut ids = c.eos_token_ids.clone();
    for t in ["<|eot_id|>", "<|end_of_text|>"] {
        if let Some(id) = tok.token_to_id(t) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    anyhow::ensure!(
        !ids.is_empty(),
        "{}: the model has no EOS token",
        model_dir.display()
    );
    Ok(ids)
}
