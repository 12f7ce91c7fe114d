//! Shared helpers for the SFT tests: the fixture folder and tiny random-init model folders.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use model::{Llama, LlamaConfig};
use runtime::DType;

/// The tiny-llama fixture (its tokenizer and chat template), overridable by `SWERL_FIXTURE`.
pub fn fixture_dir() -> PathBuf {
    match std::env::var_os("SWERL_FIXTURE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/tiny-llama"
        )),
    }
}

/// The fixture's tiny config (hidden 64, 2 layers, 4 heads, 2 KV heads, ffn 176, vocab 2048,
/// EOS ids), to be given random weights.
pub fn tiny_config() -> LlamaConfig {
    LlamaConfig::from_file(&fixture_dir().join("config.json")).unwrap()
}

/// A random-init tiny model saved as a Hugging Face folder with the fixture's tokenizer.
pub fn random_model_dir(dir: &Path, seed: u64) -> Llama {
    let m = Llama::random(tiny_config(), DType::F32, seed).unwrap();
    m.save(dir, DType::F32, Some(&fixture_dir())).unwrap();
    m
}

pub fn write_jsonl(path: &Path, lines: &[serde_json::Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Small Python-flavoured prompt/completion pairs.
pub fn small_dataset() -> Vec<serde_json::Value> {
    let pairs = [
        ("def add(a, b):", "\n    return a + b\n"),
        ("def sub(a, b):", "\n    return a - b\n"),
        ("def mul(a, b):", "\n    return a * b\n"),
        ("def neg(x):", "\n    return -x\n"),
        ("def first(xs):", "\n    return xs[0]\n"),
        ("def last(xs):", "\n    return xs[-1]\n"),
        ("def is_empty(xs):", "\n    return len(xs) == 0\n"),
        ("def square(x):", "\n    return x * x\n"),
    ];
    pairs
        .iter()
        .map(|(p, c)| serde_json::json!({"prompt": p, "completion": c}))
        .collect()
}
