//! `swerl quickstart`: the whole SWE-RL pipeline on one machine, from nothing downloaded —
//! mine a git repository, train a byte-level BPE tokenizer on its code, initialise a tiny
//! Llama-3, warm it up on oracle answers in the SWE-RL format, run GRPO, plot the reward.

use std::path::{Path, PathBuf};

use datagen::{Dataset, DatasetWriter, FilterConfig, Instance, MineOptions, Miner};
use model::optim::{OptimConfig, Schedule};
use model::{Llama, LlamaConfig, Tokenizer};
use runtime::DType;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::config::{GrpoConfig, LrSchedule};
use crate::prompt::PromptTemplate;
use crate::sft::{self, make_batches, Example, Packing, SftConfig};
use crate::train::checkpoint::save_hf_folder;
use crate::train::oracle::oracle_answer;
use crate::train::{io_err, Result, SweTask, TrainError, Trainer};

/// Llama-3's pre-tokenizer split pattern.
pub const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub const BOS: &str = "<|begin_of_text|>";
pub const EOT: &str = "<|eot_id|>";
pub const SPECIAL_TOKENS: [&str; 8] = [
    BOS,
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    EOT,
    "<think>",
    "</think>",
    "<|finetune_right_pad_id|>",
];
/// Llama-3's chat template (system/user/assistant headers, `<|eot_id|>` after each turn).
pub const CHAT_TEMPLATE: &str = "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

#[derive(Debug, Clone)]
pub struct QuickstartOptions {
    pub repo: PathBuf,
    pub out: PathBuf,
    pub vocab_size: usize,
    pub sft_steps: usize,
    pub grpo_steps: usize,
    pub seed: u64,
    pub progress: bool,
}

#[derive(Debug, Clone)]
pub struct QuickstartReport {
    pub instances: usize,
    pub demos: usize,
    pub sft_losses: Vec<f64>,
    pub rewards: Vec<f64>,
    /// The final policy (a Hugging Face folder).
    pub model_dir: PathBuf,
    pub run_dir: PathBuf,
}

/// Mines `repo` (every commit: a small repository has few merged PRs) into `out`.
pub fn mine(repo: &Path, out: &Path) -> Result<usize> {
    let filter = FilterConfig {
        max_files: 3,
        max_changed_lines: 40,
        max_file_bytes: 4096,
        relevant_k: 1,
        decontaminate: Vec::new(),
    };
    let opts = MineOptions {
        all_commits: true,
        jobs: 2,
        filter,
        ..MineOptions::default()
    };
    let mut miner = Miner::new(opts, None)?;
    let mut writer = DatasetWriter::create(out, 100_000, 1 << 30)?;
    miner.mine_repo(repo, None, &mut |inst| writer.push(&inst), &mut |_| {})?;
    writer.finish()?;
    Ok(miner.report.kept as usize)
}

/// Trains a byte-level BPE tokenizer (Llama-3 split regex and special tokens) on `texts` and
/// writes `tokenizer.json` + `tokenizer_config.json` (with the chat template) into `dir`.
pub fn train_tokenizer(texts: &[String], vocab_size: usize, dir: &Path) -> Result<()> {
    let err = |e: tokenizers::Error| TrainError::Invalid(format!("tokenizer training: {e}"));
    let mut tok = tokenizers::Tokenizer::new(BPE::default());
    let split = Split::new(
        SplitPattern::Regex(LLAMA3_SPLIT.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(err)?;
    let pre = PreSequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
    ]);
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(ByteLevel::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    tok.train(&mut trainer, texts.iter()).map_err(err)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let json = tok.to_string(true).map_err(err)?;
    model::safetensors_io::write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
    let cfg = serde_json::json!({
        "bos_token": BOS,
        "eos_token": EOT,
        "chat_template": CHAT_TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 4096,
    });
    let bytes = serde_json::to_vec_pretty(&cfg).expect("json");
    model::safetensors_io::write_atomic(&dir.join("tokenizer_config.json"), &bytes)?;
    Ok(())
}

/// A tiny Llama-3 for `tok`'s vocabulary, saved as a Hugging Face folder in `dir`.
pub fn init_model(tok: &Tokenizer, dir: &Path, seed: u64) -> Result<Llama> {
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| TrainError::Invalid(format!("the tokenizer lacks {t}")))
    };
    let cfg = LlamaConfig::from_json(serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 176,
        "vocab_size": tok.vocab_size(),
        "max_position_embeddings": 4096,
        "tie_word_embeddings": false,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": null,
        "hidden_act": "silu",
        "bos_token_id": id(BOS)?,
        "eos_token_id": [id(EOT)?, id("<|end_of_text|>")?],
        "torch_dtype": "float32",
    }))?;
    let m = Llama::random(cfg, DType::F32, seed)?;
    save_hf_folder(&m, dir, None)?;
    Ok(m)
}

fn thought(inst: &Instance) -> String {
    let files: Vec<&str> = inst.oracle_new_content.keys().map(String::as_str).collect();
    format!(
        "The issue: {}. The change belongs in {}.",
        inst.title.trim(),
        files.join(", ")
    )
}

pub fn run(opts: &QuickstartOptions) -> Result<QuickstartReport> {
    let say = |s: String| {
        if opts.progress {
            eprintln!("{s}");
        }
    };
    let data_dir = opts.out.join("data");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).map_err(io_err(&data_dir))?;
    }
    let kept = mine(&opts.repo, &data_dir)?;
    if kept == 0 {
        return Err(TrainError::Invalid(format!(
            "{}: mining kept no instance (needs a git history with small code changes)",
            opts.repo.display()
        )));
    }
    let data = Dataset::open(&data_dir)?;
    let instances: Vec<Instance> = (0..data.len())
        .map(|i| data.get(i))
        .collect::<std::result::Result<_, _>>()?;
    say(format!(
        "mined {} instances from {}",
        instances.len(),
        opts.repo.display()
    ));

    let init_dir = opts.out.join("init");
    let mut corpus: Vec<String> = Vec::new();
    let template = PromptTemplate::swe_rl();
    for inst in &instances {
        // The rendered prompt too, so the instructions' wording gets its own merges.
        let files: Vec<(&str, &str)> = inst
            .code_context
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let msgs = template
            .render(&inst.problem_statement, &files)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        corpus.extend(msgs.iter().map(|m| m.content.clone()));
        corpus.extend(inst.code_context.values().cloned());
        corpus.extend(inst.oracle_new_content.values().cloned());
    }
    train_tokenizer(&corpus, opts.vocab_size, &init_dir)?;
    let tok = Tokenizer::from_dir(&init_dir)?;
    let m = init_model(&tok, &init_dir, opts.seed)?;
    let eos = m.config.eos_token_ids.clone();
    say(format!(
        "tokenizer: {} tokens; model: {} parameters",
        tok.vocab_size(),
        m.config.num_params()
    ));

    let mut cfg = grpo_config(&init_dir, &data_dir, &opts.out.join("grpo"), opts);
    let task = SweTask::new(
        Dataset::open(&data_dir)?,
        Tokenizer::from_dir(&init_dir)?,
        PromptTemplate::swe_rl(),
        cfg.max_prompt_length,
        opts.seed,
        eos.clone(),
    )?;
    let mut demos = Vec::new();
    let (mut long_prompt, mut no_oracle, mut long_answer) = (0, 0, 0);
    for inst in &instances {
        let Some(prompt) = task.prompt(inst)? else {
            long_prompt += 1;
            continue;
        };
        let Some(answer) =
            oracle_answer(&thought(inst), &inst.code_context, &inst.oracle_new_content)
        else {
            no_oracle += 1;
            continue;
        };
        let mut completion = tok.encode(&answer, false)?;
        completion.push(eos[0]);
        if completion.len() <= cfg.max_completion_length {
            let mask = (0..prompt.len() + completion.len())
                .map(|i| i >= prompt.len())
                .collect();
            let ids = [prompt, completion].concat();
            demos.push(Example::new(ids, mask).map_err(sft_err)?);
        } else {
            long_answer += 1;
        }
    }
    if demos.is_empty() {
        return Err(TrainError::Invalid(format!(
            "no usable instance among {}: {long_prompt} prompts over max_prompt_length {}, \
             {no_oracle} without an exact oracle answer, {long_answer} answers over \
             max_completion_length {}",
            instances.len(),
            cfg.max_prompt_length,
            cfg.max_completion_length
        )));
    }
    say(format!(
        "SFT warm-up on {} oracle answers, {} steps",
        demos.len(),
        opts.sft_steps
    ));
    // Warm-up of 10 steps to 3e-3 on top of GRPO's AdamW settings.
    let max_len = demos.iter().map(|d| d.ids.len()).max().unwrap_or(1);
    let sft_cfg = SftConfig {
        optim: OptimConfig {
            lr: 3e-3,
            warmup_steps: 10,
            schedule: Schedule::Constant,
            ..cfg.optim_config()
        },
        batch_size: 4,
        max_seq_len: max_len,
        max_steps: Some(opts.sft_steps.max(1)),
        seed: opts.seed,
        packing: Packing::Pad,
        pad_multiple: 1,
        ..SftConfig::default()
    };
    let mut sft = sft::Trainer::new(m, sft_cfg).map_err(sft_err)?;
    let mut rng = runtime::Rng::new(opts.seed);
    let mut sft_losses = Vec::new();
    for s in 0..opts.sft_steps {
        let order: Vec<usize> = (0..4)
            .map(|_| rng.below(demos.len() as u64) as usize)
            .collect();
        let batches = make_batches(&demos, &order, 4, Packing::Pad, max_len, 1).map_err(sft_err)?;
        sft_losses.push(sft.train_step(&batches).map_err(sft_err)?.loss);
        if opts.progress && (s + 1) % 20 == 0 {
            eprintln!("  sft step {}: loss {:.3}", s + 1, sft_losses[s]);
        }
    }
    let m = sft.into_model();
    let sft_dir = opts.out.join("sft");
    save_hf_folder(&m, &sft_dir, Some(&init_dir))?;

    cfg.model = sft_dir.clone();
    let run_dir = cfg.output_dir.clone();
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).map_err(io_err(&run_dir))?;
    }
    let mut trainer = Trainer::new(cfg, m, task, eos)?;
    say(format!("GRPO: {} steps", trainer.cfg.steps));
    let metrics = trainer.run(opts.progress)?;
    let model_dir = opts.out.join("model");
    save_hf_folder(&trainer.learner.model, &model_dir, Some(&init_dir))?;
    crate::plot::plot_run(&run_dir)?;
    Ok(QuickstartReport {
        instances: instances.len(),
        demos: demos.len(),
        sft_losses,
        rewards: metrics.iter().map(|m| m.reward_mean).collect(),
        model_dir,
        run_dir,
    })
}

/// The quickstart's GRPO settings: small enough for two CPU cores.
fn grpo_config(model: &Path, data: &Path, out: &Path, opts: &QuickstartOptions) -> GrpoConfig {
    GrpoConfig {
        model: model.to_path_buf(),
        data_dir: data.to_path_buf(),
        output_dir: out.to_path_buf(),
        per_step_problems: 2,
        num_generations: 4,
        beta: 0.0,
        epsilon: 0.2,
        epsilon_high: Some(0.28),
        loss_type: crate::grpo::LossType::Grpo,
        scale_rewards: crate::grpo::ScaleRewards::Group,
        learning_rate: 5e-4,
        lr_schedule: LrSchedule::Constant,
        warmup_steps: 0,
        weight_decay: 0.0,
        adam_beta1: 0.9,
        adam_beta2: 0.999,
        adam_epsilon: 1e-8,
        max_grad_norm: 1.0,
        max_prompt_length: 1536,
        max_completion_length: 192,
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        steps: opts.grpo_steps,
        seed: opts.seed,
        save_steps: 0,
        num_iterations: 1,
        mask_truncated_completions: false,
        micro_batch: 4,
        prompt_template: None,
    }
}

fn sft_err(e: sft::SftError) -> TrainError {
    TrainError::Invalid(format!("SFT warm-up: {e}"))
}
