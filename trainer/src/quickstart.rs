//! `swerl quickstart`: the whole SWE-RL pipeline on one machine, from nothing downloaded —
//! mine a git repository, train a byte-level BPE tokenizer on its code, initialise a tiny
//! Llama-3, warm it up on oracle answers in the SWE-RL format, run GRPO, plot the reward.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datagen::{Dataset, DatasetWriter, FilterConfig, Instance, MineOptions, Miner};
use model::optim::{OptimConfig, Schedule};
use model::{GenerateConfig, Llama, LlamaConfig, Tokenizer};
use runtime::{DType, SamplingParams};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::config::{GrpoConfig, LrSchedule};
use crate::prompt::{change_window, changed_span, line_window, PromptTemplate};
use crate::reward::calculate_search_replace_reward;
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
    /// Problems per GRPO step, each sampled `num_generations` times.
    pub per_step_problems: usize,
    pub num_generations: usize,
    pub temperature: f64,
    pub learning_rate: f64,
    /// Lines shown either side of each change (see `GrpoConfig::context_window`).
    pub context_window: usize,
    /// Longest oracle answer (tokens, with EOS) kept as a problem; also GRPO's
    /// `max_completion_length`.
    pub max_completion_length: usize,
    /// Also warm up on a misindented copy of each oracle answer (see [`misindented`]).
    pub flawed_demos: bool,
    pub seed: u64,
    pub progress: bool,
}

impl QuickstartOptions {
    /// The defaults of `swerl quickstart`: a few minutes on two CPU cores.
    pub fn new(repo: PathBuf, out: PathBuf) -> Self {
        QuickstartOptions {
            repo,
            out,
            vocab_size: 2048,
            sft_steps: 400,
            grpo_steps: 30,
            per_step_problems: 8,
            num_generations: 8,
            temperature: 0.7,
            learning_rate: 5e-4,
            context_window: 2,
            max_completion_length: 256,
            flawed_demos: true,
            seed: 0,
            progress: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct QuickstartReport {
    pub instances: usize,
    /// Instances with an oracle answer that fits: the SFT demos and the GRPO problems.
    pub demos: usize,
    pub sft_losses: Vec<f64>,
    /// Misindented copies of oracle answers among the warm-up demonstrations.
    pub flawed_demos: usize,
    /// Fraction of answers sampled after the warm-up that were well-formed.
    pub well_formed_after_sft: f64,
    /// Mean reward of each GRPO step.
    pub rewards: Vec<f64>,
    pub format_error_rates: Vec<f64>,
    /// The final policy (a Hugging Face folder).
    pub model_dir: PathBuf,
    pub run_dir: PathBuf,
}

impl QuickstartReport {
    /// Mean reward over the first and the last `n` GRPO steps.
    pub fn before_after(&self, n: usize) -> (f64, f64) {
        let n = n.clamp(1, self.rewards.len().max(1));
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
        let k = self.rewards.len();
        (
            mean(&self.rewards[..n.min(k)]),
            mean(&self.rewards[k - n.min(k)..]),
        )
    }
}

/// Mines every commit of `repo` (a small repository has few merged PRs) into `out`, keeping
/// small changes; files may be large, as prompts show them only around the change.
pub fn mine(repo: &Path, out: &Path) -> Result<usize> {
    let filter = FilterConfig {
        max_files: 4,
        max_changed_lines: 80,
        max_file_bytes: 1 << 16,
        relevant_k: 0,
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

/// The modified files of `inst` cut to `margin` lines around their change: `(old, new)`
/// contexts in which the oracle edit is the same edit as in the whole files.
pub fn windowed_files(
    inst: &Instance,
    margin: usize,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let (mut old_w, mut new_w) = (BTreeMap::new(), BTreeMap::new());
    for (path, new) in &inst.oracle_new_content {
        let old = inst.code_context.get(path).map_or("", String::as_str);
        let Some(((lo, hi), (nlo, nhi))) = changed_span(old, new) else {
            continue;
        };
        old_w.insert(path.clone(), line_window(old, lo, hi, margin).0);
        new_w.insert(path.clone(), line_window(new, nlo, nhi, margin).0);
    }
    (old_w, new_w)
}

/// The oracle answer of `inst` whose SEARCH blocks lie inside the prompt's windows, or `None`
/// when there is none scoring 1 on the whole files.
pub fn windowed_oracle_answer(inst: &Instance, margin: usize) -> Option<String> {
    let (old_w, new_w) = windowed_files(inst, margin);
    let answer = oracle_answer(&thought(inst), &old_w, &new_w)?;
    let full =
        calculate_search_replace_reward(&inst.code_context, &inst.oracle_new_content, &answer);
    (full.reward == 1.0).then_some(answer)
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

/// `answer` with the indentation of its SEARCH lines stripped (or, where none is indented,
/// four spaces added): the whitespace slip the prompt warns about, which the reward scores -1
/// (SEARCH text not found). `None` if the slip happens to still apply.
///
/// Warming up on these beside the oracle answers stands for imperfect demonstrations: the
/// warmed-up policy writes both, and GRPO has to learn from the reward alone which to keep.
pub fn misindented(answer: &str, inst: &Instance) -> Option<String> {
    let mut out = Vec::new();
    let mut in_search = false;
    let indented = answer
        .split('\n')
        .skip_while(|l| *l != "<<<<<<< SEARCH")
        .take_while(|l| *l != "=======")
        .any(|l| l.starts_with([' ', '\t']));
    for line in answer.split('\n') {
        match line {
            "<<<<<<< SEARCH" => in_search = true,
            "=======" => in_search = false,
            _ => {}
        }
        if in_search && line != "<<<<<<< SEARCH" && !line.is_empty() {
            out.push(if indented {
                line.trim_start().to_string()
            } else {
                format!("    {line}")
            });
        } else {
            out.push(line.to_string());
        }
    }
    let bad = out.join("\n");
    let r = calculate_search_replace_reward(&inst.code_context, &inst.oracle_new_content, &bad);
    (bad != answer && r.format_error.is_some()).then_some(bad)
}

fn thought(inst: &Instance) -> String {
    let files: Vec<&str> = inst.oracle_new_content.keys().map(String::as_str).collect();
    format!("The change belongs in {}.", files.join(", "))
}

/// Mined instances whose windowed oracle answer fits the limits, with that answer.
struct Problems {
    mined: usize,
    usable: Vec<(Instance, String)>,
    no_oracle: usize,
}

fn problems(instances: Vec<Instance>, margin: usize) -> Problems {
    let mined = instances.len();
    let mut usable = Vec::new();
    let mut no_oracle = 0;
    for inst in instances {
        match windowed_oracle_answer(&inst, margin) {
            Some(a) => usable.push((inst, a)),
            None => no_oracle += 1,
        }
    }
    Problems {
        mined,
        usable,
        no_oracle,
    }
}

pub fn run(opts: &QuickstartOptions) -> Result<QuickstartReport> {
    let say = |s: String| {
        if opts.progress {
            eprintln!("{s}");
        }
    };
    let mined_dir = opts.out.join("data");
    let data_dir = opts.out.join("problems");
    for d in [&mined_dir, &data_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(io_err(d))?;
        }
    }
    let kept = mine(&opts.repo, &mined_dir)?;
    if kept == 0 {
        return Err(TrainError::Invalid(format!(
            "{}: mining kept no instance (needs a git history with small code changes)",
            opts.repo.display()
        )));
    }
    let mined = Dataset::open(&mined_dir)?;
    let instances: Vec<Instance> = (0..mined.len())
        .map(|i| mined.get(i))
        .collect::<std::result::Result<_, _>>()?;
    let margin = opts.context_window;
    let found = problems(instances, margin);
    say(format!(
        "mined {} instances from {} ({} with an oracle answer inside a {margin}-line window)",
        found.mined,
        opts.repo.display(),
        found.usable.len()
    ));

    // The tokenizer learns the prompts as the model will see them, and the answers.
    let init_dir = opts.out.join("init");
    let template = PromptTemplate::swe_rl();
    let mut corpus: Vec<String> = Vec::new();
    for (inst, answer) in &found.usable {
        let shown: Vec<(String, String)> = inst
            .code_context
            .iter()
            .map(|(p, old)| {
                let text = match inst.oracle_new_content.get(p) {
                    Some(new) => change_window(old, new, margin),
                    None => old.clone(),
                };
                (p.clone(), text)
            })
            .collect();
        let files: Vec<(&str, &str)> = shown
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let msgs = template
            .render(&inst.problem_statement, &files)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        corpus.extend(msgs.iter().map(|m| m.content.clone()));
        corpus.push(answer.clone());
    }
    if corpus.is_empty() {
        return Err(TrainError::Invalid(format!(
            "none of the {} mined instances has an oracle answer within a {margin}-line window",
            found.mined
        )));
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
    let probe = SweTask::new(
        Dataset::open(&mined_dir)?,
        Tokenizer::from_dir(&init_dir)?,
        PromptTemplate::swe_rl(),
        cfg.max_prompt_length,
        opts.seed,
        eos.clone(),
    )?
    .with_context_window(Some(margin));
    // The problems: instances whose prompt and oracle answer fit, written as the GRPO dataset.
    let mut demos = Vec::new();
    let mut kept = Vec::new();
    let (mut long_prompt, mut long_answer, mut flawed) = (0, 0, 0);
    let mut writer = DatasetWriter::create(&data_dir, 100_000, 1 << 30)?;
    for (inst, answer) in &found.usable {
        let Some(prompt) = probe.prompt(inst)? else {
            long_prompt += 1;
            continue;
        };
        let mut completion = tok.encode(answer, false)?;
        completion.push(eos[0]);
        if completion.len() > opts.max_completion_length {
            long_answer += 1;
            continue;
        }
        let demo = |completion: Vec<u32>| {
            let mask = (0..prompt.len() + completion.len())
                .map(|i| i >= prompt.len())
                .collect();
            Example::new([prompt.clone(), completion].concat(), mask).map_err(sft_err)
        };
        demos.push(demo(completion)?);
        if opts.flawed_demos {
            if let Some(bad) = misindented(answer, inst) {
                let mut completion = tok.encode(&bad, false)?;
                completion.push(eos[0]);
                if completion.len() <= opts.max_completion_length {
                    demos.push(demo(completion)?);
                    flawed += 1;
                }
            }
        }
        kept.push((inst, prompt));
        writer.push(inst)?;
    }
    writer.finish()?;
    if demos.is_empty() {
        return Err(TrainError::Invalid(format!(
            "no usable instance among {}: {} without an exact oracle answer in the window, \
             {long_prompt} prompts over max_prompt_length {}, {long_answer} answers over \
             {} tokens",
            found.mined, found.no_oracle, cfg.max_prompt_length, opts.max_completion_length
        )));
    }
    say(format!(
        "{} problems ({} answers over {} tokens, {long_prompt} prompts too long); SFT warm-up on \
         their oracle answers and {flawed} misindented ones, up to {} steps",
        kept.len(),
        long_answer,
        opts.max_completion_length,
        opts.sft_steps
    ));
    let probe_of = |m: &Llama, seed: u64| well_formed_rate(m, &kept, &tok, &eos, opts, seed);
    let (m, sft_losses, well_formed) = sft_warmup(m, &demos, &cfg, opts, &probe_of)?;
    say(format!(
        "SFT: {} steps, loss {:.3}; {:.0}% of sampled answers well-formed",
        sft_losses.len(),
        sft_losses.last().copied().unwrap_or(f64::NAN),
        100.0 * well_formed
    ));
    let sft_dir = opts.out.join("sft");
    save_hf_folder(&m, &sft_dir, Some(&init_dir))?;

    cfg.model = sft_dir.clone();
    let run_dir = cfg.output_dir.clone();
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).map_err(io_err(&run_dir))?;
    }
    let task = SweTask::new(
        Dataset::open(&data_dir)?,
        Tokenizer::from_dir(&init_dir)?,
        PromptTemplate::swe_rl(),
        cfg.max_prompt_length,
        opts.seed,
        eos.clone(),
    )?
    .with_context_window(cfg.context_window);
    let mut trainer = Trainer::new(cfg, m, task, eos)?;
    say(format!(
        "GRPO: {} steps of {} problems x {} samples",
        trainer.cfg.steps, trainer.cfg.per_step_problems, trainer.cfg.num_generations
    ));
    let metrics = trainer.run(opts.progress)?;
    let model_dir = opts.out.join("model");
    save_hf_folder(&trainer.learner.model, &model_dir, Some(&init_dir))?;
    crate::plot::plot_run(&run_dir)?;
    Ok(QuickstartReport {
        well_formed_after_sft: well_formed,
        instances: found.mined,
        demos: kept.len(),
        flawed_demos: flawed,
        sft_losses,
        rewards: metrics.iter().map(|m| m.reward_mean).collect(),
        format_error_rates: metrics.iter().map(|m| m.format_error_rate).collect(),
        model_dir,
        run_dir,
    })
}

/// Fraction of one sampled answer per problem (at GRPO's temperature) that is well-formed:
/// tags, blocks, and SEARCH text found in the file.
fn well_formed_rate(
    m: &Llama,
    problems: &[(&Instance, Vec<u32>)],
    tok: &Tokenizer,
    eos: &[u32],
    opts: &QuickstartOptions,
    seed: u64,
) -> Result<f64> {
    let prompts: Vec<Vec<u32>> = problems.iter().map(|(_, p)| p.clone()).collect();
    let cfg = GenerateConfig {
        max_new_tokens: opts.max_completion_length,
        sampling: SamplingParams {
            temperature: opts.temperature as f32,
            top_k: 0,
            top_p: 1.0,
        },
        seed,
        eos_token_ids: eos.to_vec(),
    };
    let outs = m.generate(&prompts, &cfg)?;
    let ok = outs
        .iter()
        .zip(problems)
        .filter(|(ids, (inst, _))| {
            let ids: Vec<u32> = ids.iter().copied().filter(|t| !eos.contains(t)).collect();
            let text = tok.decode(&ids, false).unwrap_or_default();
            calculate_search_replace_reward(&inst.code_context, &inst.oracle_new_content, &text)
                .format_error
                .is_none()
        })
        .count();
    Ok(ok as f64 / problems.len().max(1) as f64)
}

/// Supervised warm-up on the oracle answers (each epoch in a fresh seeded order) until a
/// probe of sampled answers finds `WELL_FORMED_TARGET` of them well-formed, or `sft_steps`.
/// GRPO needs that start: while every sample scores -1 the group advantages, and so the
/// policy gradient, are all zero; a policy that already answers every problem exactly leaves
/// nothing to learn. Returns the model, the losses and the last probe's rate.
fn sft_warmup(
    m: Llama,
    demos: &[Example],
    cfg: &GrpoConfig,
    opts: &QuickstartOptions,
    probe: &dyn Fn(&Llama, u64) -> Result<f64>,
) -> Result<(Llama, Vec<f64>, f64)> {
    const BATCH: usize = 4;
    const PROBE_EVERY: usize = 10;
    const WELL_FORMED_TARGET: f64 = 0.4;
    let max_len = demos.iter().map(|d| d.ids.len()).max().unwrap_or(1);
    let sft_cfg = SftConfig {
        optim: OptimConfig {
            lr: 3e-3,
            warmup_steps: 10,
            schedule: Schedule::Constant,
            ..cfg.optim_config()
        },
        batch_size: BATCH,
        max_seq_len: max_len,
        max_steps: Some(opts.sft_steps.max(1)),
        seed: opts.seed,
        packing: Packing::Pad,
        pad_multiple: 1,
        ..SftConfig::default()
    };
    let mut sft = sft::Trainer::new(m, sft_cfg).map_err(sft_err)?;
    let mut rng = runtime::Rng::new(opts.seed);
    let mut queue: Vec<usize> = Vec::new();
    let mut losses = Vec::new();
    let mut rate = 0.0;
    for s in 0..opts.sft_steps {
        let mut order = Vec::with_capacity(BATCH);
        while order.len() < BATCH {
            if queue.is_empty() {
                queue = (0..demos.len()).collect();
                for i in (1..queue.len()).rev() {
                    queue.swap(i, rng.below(i as u64 + 1) as usize);
                }
            }
            order.extend(queue.pop());
        }
        let batches =
            make_batches(demos, &order, BATCH, Packing::Pad, max_len, 1).map_err(sft_err)?;
        losses.push(sft.train_step(&batches).map_err(sft_err)?.loss);
        if (s + 1) % PROBE_EVERY == 0 || s + 1 == opts.sft_steps {
            rate = probe(sft.model(), opts.seed ^ s as u64)?;
            if opts.progress {
                eprintln!(
                    "  sft step {}: loss {:.3}, {:.0}% of sampled answers well-formed",
                    s + 1,
                    losses[s],
                    100.0 * rate
                );
            }
            if rate >= WELL_FORMED_TARGET {
                break;
            }
        }
    }
    Ok((sft.into_model(), losses, rate))
}

/// The quickstart's GRPO settings: small enough for two CPU cores.
fn grpo_config(model: &Path, data: &Path, out: &Path, opts: &QuickstartOptions) -> GrpoConfig {
    GrpoConfig {
        model: model.to_path_buf(),
        data_dir: data.to_path_buf(),
        output_dir: out.to_path_buf(),
        per_step_problems: opts.per_step_problems,
        num_generations: opts.num_generations,
        beta: 0.0,
        epsilon: 0.2,
        epsilon_high: Some(0.28),
        loss_type: crate::grpo::LossType::Grpo,
        scale_rewards: crate::grpo::ScaleRewards::Group,
        learning_rate: opts.learning_rate,
        lr_schedule: LrSchedule::Constant,
        warmup_steps: 0,
        weight_decay: 0.0,
        adam_beta1: 0.9,
        adam_beta2: 0.999,
        adam_epsilon: 1e-8,
        max_grad_norm: 1.0,
        max_prompt_length: 1024,
        max_completion_length: opts.max_completion_length,
        temperature: opts.temperature,
        top_p: 1.0,
        top_k: 0,
        steps: opts.grpo_steps,
        seed: opts.seed,
        save_steps: 0,
        num_iterations: 1,
        mask_truncated_completions: false,
        micro_batch: 8,
        prompt_template: None,
        context_window: Some(opts.context_window),
        zero1: false,
        overlap_grad_sync: None,
        bucket_mb: 25.0,
    }
}

fn sft_err(e: sft::SftError) -> TrainError {
    TrainError::Invalid(format!("SFT warm-up: {e}"))
}
