//! `swerl logprobs`: each position's log-probability of the next given token, as JSON.

use std::path::PathBuf;

use anyhow::{bail, Context};
use model::Llama;

#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Token ids, comma-separated (at least two).
    #[arg(long, value_delimiter = ',', required = true)]
    pub input_ids: Vec<u32>,
}

/// `{"input_ids": [...], "logprobs": [...], "mean_logprob": x}`; `logprobs[i]` is
/// `log p(input_ids[i + 1] | input_ids[..=i])`.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.input_ids.len() < 2 {
        bail!(
            "--input-ids needs at least two tokens (got {})",
            a.input_ids.len()
        );
    }
    let m = Llama::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let lp = m.token_logprobs(&a.input_ids)?;
    let mean = lp.iter().map(|&x| x as f64).sum::<f64>() / lp.len() as f64;
    let out = serde_json::json!({
        "input_ids": a.input_ids,
        "logprobs": lp,
        "mean_logprob": mean,
    });
    println!("{out}");
    Ok(())
}
