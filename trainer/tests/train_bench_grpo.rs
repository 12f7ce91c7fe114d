//! `swerl bench grpo` through the real binary on the tiny shape: every phase of the step is
//! timed, the JSON line carries the split, and bad sizes are refused.

use std::process::Command;

fn swerl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swerl"))
}

#[test]
fn bench_grpo_times_every_phase() {
    let out = swerl()
        .args(["bench", "grpo", "--config", "tiny", "--steps", "1"])
        .args(["--prompt-len", "16", "--completion-len", "8", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(j["bench"], "grpo");
    let secs = &j["seconds"];
    // beta > 0 and num_iterations 2 by default: reference and old-policy passes both run.
    for k in ["generate", "reward", "logprobs", "backward", "optimizer"] {
        assert!(secs[k].as_f64().unwrap() > 0.0, "{k}: {j}");
    }
    let parts: f64 = ["generate", "reward", "logprobs", "backward", "optimizer"]
        .iter()
        .map(|k| secs[k].as_f64().unwrap())
        .sum();
    assert!((parts - secs["total"].as_f64().unwrap()).abs() < 1e-9);
    for k in [
        "generation_tokens_per_s",
        "logprob_tokens_per_s",
        "train_tokens_per_s",
        "optimizer_params_per_s",
    ] {
        assert!(j[k].as_f64().unwrap() > 0.0, "{k}: {j}");
    }
    assert!(text.contains("policy fwd + bwd"), "{text}");

    let bad = swerl()
        .args(["bench", "grpo", "--config", "tiny", "--steps", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--steps"));
}
