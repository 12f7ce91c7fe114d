//! `swerl`: SWE-RL in one binary. Each subcommand lives in `cli/<name>.rs` as an
//! `Args` struct plus `run(args) -> anyhow::Result<()>`; this file only dispatches.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "swerl",
    version,
    about = "SWE-RL in one Rust binary: miner, reward, Llama-3 GRPO trainer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the build's features and the devices it can use.
    Info(cli::info::Args),
    /// Score completions with the SWE-RL reward (one JSON line per case on stdout).
    Reward(cli::reward::Args),
    /// Mine git histories (+ GH Archive events) into a SWE-RL dataset.
    Mine(cli::mine::Args),
    /// Inspect, export and import datasets.
    Data(cli::data::Args),
    /// Generate a completion from a model folder (KV cache; greedy or sampled).
    Generate(cli::generate::Args),
    /// Per-position log-probabilities of given token ids, as JSON.
    Logprobs(cli::logprobs::Args),
    /// Throughput benchmarks (`swerl bench decode`, ...).
    Bench(cli::bench::Args),
    /// Supervised fine-tuning on a JSONL file of prompt/completion or chat examples.
    Sft(cli::sft::Args),
    /// Memory plan of a training/generation run: weights, gradients, optimizer, activations, KV cache.
    Plan(cli::plan::Args),
    /// GRPO on mined data: `swerl train --config FILE [--resume DIR|latest] [--key value ...]`.
    Train(cli::train::Args),
    /// The whole pipeline on this machine: mine a repo, tokenizer, tiny Llama-3, SFT, GRPO.
    Quickstart(cli::quickstart::Args),
    /// Reward / loss / KL curves of a training run as SVG.
    Plot(cli::plot::Args),
    /// Start one process per rank with the torchrun environment: `swerl launch --nproc N -- swerl train ...`.
    Launch(cli::launch::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info(a) => cli::info::run(a),
        Command::Reward(a) => cli::reward::run(a),
        Command::Mine(a) => cli::mine::run(a),
        Command::Data(a) => cli::data::run(a),
        Command::Generate(a) => cli::generate::run(a),
        Command::Logprobs(a) => cli::logprobs::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Sft(a) => cli::sft::run(a),
        Command::Plan(a) => cli::plan::run(a),
        Command::Train(a) => cli::train::run(a),
        Command::Quickstart(a) => cli::quickstart::run(a),
        Command::Plot(a) => cli::plot::run(a),
        Command::Launch(a) => cli::launch::run(a),
    }
}
