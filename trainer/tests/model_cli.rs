//! `swerl generate` and `swerl logprobs` on the fixture folder, through the real binary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use model::Llama;
use runtime::Tensor;

/// The fixture folder: `SWERL_FIXTURE`, or the project's copy.
fn fixture_dir() -> PathBuf {
    match std::env::var_os("SWERL_FIXTURE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/tiny-llama"
        )),
    }
}

fn reference() -> BTreeMap<String, Tensor> {
    model::safetensors_io::read_all(&fixture_dir().join("reference.safetensors"))
        .expect("reference.safetensors")
}

/// Rows of an integer tensor `[B, T]` as token ids.
fn id_rows(t: &Tensor) -> Vec<Vec<u32>> {
    let v = t.to_vec::<i64>().unwrap();
    v.chunks(t.dim(1))
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect()
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_swerl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn csv(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn generate_prompt_ids_greedy_matches_reference() {
    let r = reference();
    let prompt = id_rows(&r["greedy.prompt"]).remove(0);
    let want = id_rows(&r["greedy.output"]).remove(0);
    let dir = fixture_dir();
    let n = (want.len() - prompt.len()).to_string();
    let (ok, out, err) = run(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt-ids",
        &csv(&prompt),
        "--max-new-tokens",
        &n,
        "--ids",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), csv(&want[prompt.len()..]));
}

#[test]
fn generate_text_and_chat_print_decoded_text() {
    let dir = fixture_dir();
    let d = dir.to_str().unwrap();
    let m = Llama::load(&dir).unwrap();
    let tok = model::Tokenizer::from_dir(&dir).unwrap();
    for chat in [false, true] {
        let mut args = vec![
            "generate",
            "--model",
            d,
            "--prompt",
            "def foo(x):",
            "--max-new-tokens",
            "6",
        ];
        if chat {
            args.push("--chat");
        }
        let (ok, out, err) = run(&args);
        assert!(ok, "{err}");
        let prompt = if chat {
            tok.encode_chat(&[model::Message::new("user", "def foo(x):")], true)
                .unwrap()
        } else {
            tok.encode("def foo(x):", true).unwrap()
        };
        let cfg = model::GenerateConfig::greedy(6, m.config.eos_token_ids.clone());
        let ids = m.generate(&[prompt], &cfg).unwrap().remove(0);
        assert_eq!(
            out.strip_suffix('\n').unwrap(),
            tok.decode(&ids, true).unwrap()
        );
    }
    let sampled = [
        "generate",
        "--model",
        d,
        "--prompt",
        "x",
        "--temperature",
        "1.0",
        "--top-p",
        "0.9",
        "--seed",
        "5",
        "--ids",
    ];
    let (ok, out1, _) = run(&sampled);
    let (_, out2, _) = run(&sampled);
    assert!(ok);
    assert_eq!(out1, out2, "same seed, same sample");
}

#[test]
fn logprobs_prints_json_with_each_position_and_the_mean() {
    let dir = fixture_dir();
    let row = id_rows(&reference()["input_ids"]).remove(0);
    let (ok, out, err) = run(&[
        "logprobs",
        "--model",
        dir.to_str().unwrap(),
        "--input-ids",
        &csv(&row),
    ]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let lp: Vec<f64> = j["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let want = Llama::load(&dir).unwrap().token_logprobs(&row).unwrap();
    assert_eq!(lp.len(), row.len() - 1);
    for (a, b) in lp.iter().zip(&want) {
        assert!((a - *b as f64).abs() < 1e-6);
    }
    let mean = lp.iter().sum::<f64>() / lp.len() as f64;
    assert!((j["mean_logprob"].as_f64().unwrap() - mean).abs() < 1e-9);
}

#[test]
fn bad_cli_input_fails_with_a_message() {
    let dir = fixture_dir();
    let d = dir.to_str().unwrap();
    let (ok, _, err) = run(&["logprobs", "--model", d, "--input-ids", "5"]);
    assert!(!ok && err.contains("at least two"), "{err}");
    let (ok, _, err) = run(&[
        "generate",
        "--model",
        "/nonexistent/model",
        "--prompt-ids",
        "1,2",
    ]);
    assert!(!ok && err.contains("/nonexistent/model"), "{err}");
    let (ok, _, err) = run(&["generate", "--model", d]);
    assert!(!ok && !err.is_empty());
}
