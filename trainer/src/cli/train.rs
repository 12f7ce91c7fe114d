//! `swerl train --config FILE [--resume DIR|latest] [--key value ...]`: GRPO on mined data.

use std::path::PathBuf;

use anyhow::Context;
use datagen::Dataset;
use model::{Llama, Tokenizer};
use trainer::config::GrpoConfig;
use trainer::prompt::PromptTemplate;
use trainer::train::{checkpoint, SweTask, Trainer};

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
    /// `--key value` overrides of config keys.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    overrides: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = GrpoConfig::load(args.config.as_deref(), &args.overrides)?;
    let resume = match args.resume.as_deref() {
        None => None,
        Some("latest") => Some(
            checkpoint::latest(&cfg.output_dir)?
                .with_context(|| format!("no checkpoint in {}", cfg.output_dir.display()))?,
        ),
        Some(dir) => Some(PathBuf::from(dir)),
    };
    let model_dir = resume.clone().unwrap_or_else(|| cfg.model.clone());
    let tokenizer = Tokenizer::from_dir(&model_dir)?;
    let data = Dataset::open(&cfg.data_dir)
        .with_context(|| format!("opening the dataset {}", cfg.data_dir.display()))?;
    let eos = eos_ids(&model_dir, &tokenizer)?;
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
    let mut trainer = match &resume {
        Some(dir) => Trainer::resume(cfg, dir, task, eos)?,
        None => {
            let model = Llama::load(&cfg.model)?;
            Trainer::new(cfg, model, task, eos)?
        }
    };
    let metrics = trainer.run(!args.quiet)?;
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
        trainer.cfg.output_dir.join("metrics.jsonl").display(),
        trainer.cfg.output_dir.display()
    );
    Ok(())
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
