//! `swerl generate`: sample a completion from a model folder with the KV cache.

use std::path::PathBuf;

use anyhow::{bail, Context};
use model::{GenerateConfig, Llama, Message, Tokenizer};
use runtime::SamplingParams;

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["prompt", "prompt_ids"]))]
pub struct Args {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Prompt text (tokenized with the folder's tokenizer, BOS added).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Wrap --prompt as a user message in the model's chat template.
    #[arg(long, requires = "prompt")]
    pub chat: bool,
    /// Prompt token ids, comma-separated, used as given.
    #[arg(long, value_delimiter = ',')]
    pub prompt_ids: Option<Vec<u32>>,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the generated token ids (comma-separated) instead of text.
    #[arg(long)]
    pub ids: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let m = Llama::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let needs_tok = a.prompt.is_some() || !a.ids;
    let tok = if needs_tok {
        Some(Tokenizer::from_dir(&a.model)?)
    } else {
        None
    };
    let prompt: Vec<u32> = match (&a.prompt, &a.prompt_ids, &tok) {
        (Some(text), _, Some(t)) if a.chat => t.encode_chat(&[Message::new("user", text)], true)?,
        (Some(text), _, Some(t)) => t.encode(text, true)?,
        (None, Some(ids), _) => ids.clone(),
        _ => bail!("give --prompt TEXT or --prompt-ids 1,2,3"),
    };
    if a.temperature.is_nan() || a.temperature < 0.0 {
        bail!("--temperature must be >= 0, got {}", a.temperature);
    }
    if !(a.top_p > 0.0 && a.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], got {}", a.top_p);
    }
    let cfg = GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        sampling: SamplingParams {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
        },
        seed: a.seed,
        eos_token_ids: m.config.eos_token_ids.clone(),
    };
    let out = m.generate(&[prompt], &cfg)?.remove(0);
    if a.ids {
        let s: Vec<String> = out.iter().map(u32::to_string).collect();
        println!("{}", s.join(","));
    } else {
        let tok = tok.expect("tokenizer loaded when printing text");
        println!("{}", tok.decode(&out, true)?);
    }
    Ok(())
}
