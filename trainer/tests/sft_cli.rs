//! `swerl sft` end to end: a Hugging Face folder in, a trained folder + metrics JSONL out,
//! loadable by the model crate; bad data lines fail with file:line.

mod sft_support;

use std::path::Path;
use std::process::{Command, Output};

use model::Llama;
use sft_support::*;

fn swerl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swerl"))
}

/// `swerl sft --quiet ARGS --model SRC --data DATA --out OUT`.
fn sft(args: &[&str], src: &Path, data: &Path, out: &Path) -> Output {
    swerl()
        .args(["sft", "--quiet"])
        .args(args)
        .arg("--model")
        .arg(src)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn sft_writes_a_loadable_folder_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("base"), tmp.path().join("out"));
    let base = random_model_dir(&src, 3);
    let data = tmp.path().join("d.jsonl");
    write_jsonl(&data, &small_dataset());
    let st = sft(
        &[
            "--steps",
            "4",
            "--batch-size",
            "2",
            "--grad-accum",
            "2",
            "--lr",
            "1e-3",
            "--warmup",
            "1",
            "--max-seq-len",
            "64",
        ],
        &src,
        &data,
        &out,
    );
    assert_ok(&st);
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["step"], i + 1);
        for k in ["loss", "lr", "grad_norm", "tokens_per_s"] {
            assert!(r[k].as_f64().unwrap().is_finite(), "{k} in {r}");
        }
    }
    let lr: Vec<f64> = rows.iter().map(|r| r["lr"].as_f64().unwrap()).collect();
    // One warmup step from 0 (as Hugging Face), then cosine over the remaining three.
    assert_eq!(lr[0], 0.0);
    assert!((lr[1] - 1e-3).abs() < 1e-9, "{lr:?}");
    assert!(lr[2] < lr[1] && lr[3] < lr[2], "{lr:?}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let trained = Llama::load(&out).unwrap();
    assert_eq!(trained.config.num_params(), base.config.num_params());
    let (a, b) = (
        base.params.layers[0].wq.to_f32_vec().unwrap(),
        trained.params.layers[0].wq.to_f32_vec().unwrap(),
    );
    assert!(
        a.iter().zip(&b).any(|(x, y)| x != y),
        "weights did not change"
    );
}

#[test]
fn sft_reports_the_bad_line() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("base");
    random_model_dir(&src, 3);
    let data = tmp.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": 3}\n",
    )
    .unwrap();
    let st = sft(&["--steps", "1"], &src, &data, &tmp.path().join("out"));
    assert!(!st.status.success());
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(err.contains(&format!("{}:2:", data.display())), "{err}");
}

#[test]
fn swerl_generate_reproduces_a_sequence_memorised_by_swerl_sft() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("base"), tmp.path().join("out"));
    random_model_dir(&src, 9);
    let data = tmp.path().join("one.jsonl");
    let completion = "\n    return a + b  # sum\n";
    write_jsonl(
        &data,
        &[serde_json::json!({"prompt": "def add(a, b):", "completion": completion})],
    );
    let st = sft(
        &[
            "--steps",
            "60",
            "--lr",
            "1e-2",
            "--schedule",
            "constant",
            "--batch-size",
            "1",
        ],
        &src,
        &data,
        &out,
    );
    assert_ok(&st);
    let gen = swerl()
        .args([
            "generate",
            "--prompt",
            "def add(a, b):",
            "--max-new-tokens",
            "30",
        ])
        .arg("--model")
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&gen);
    // The EOS ends generation and is skipped when decoding; println adds the newline.
    assert_eq!(
        String::from_utf8_lossy(&gen.stdout),
        format!("{completion}\n")
    );
}
