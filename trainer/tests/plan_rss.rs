//! The memory planner against reality: one real f32 train step of the small config in a child
//! process (`swerl plan --measure`), whose peak RSS must be within 20% of the plan.

use std::process::Command;

fn swerl(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_swerl"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "swerl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn measure(extra: &[&str]) -> (f64, f64) {
    let mut args = vec!["plan", "--config", "small", "--measure"];
    args.extend(extra);
    let v: serde_json::Value = serde_json::from_str(swerl(&args).trim()).unwrap();
    let measured = v["measured_peak_rss"].as_f64().unwrap();
    let planned = v["planned_train_peak"].as_f64().unwrap();
    assert!(v["loss"].as_f64().unwrap().is_finite());
    (measured, planned)
}

#[test]
fn small_config_plan_is_within_20_percent_of_measured_peak_rss() {
    let (measured, planned) = measure(&["--batch", "4", "--seq", "256"]);
    let err = (planned - measured).abs() / measured;
    eprintln!("small 4x256: measured {measured:.0} B, planned {planned:.0} B, error {err:.3}");
    assert!(err <= 0.20, "measured {measured} vs planned {planned}");
}

#[test]
fn recompute_plan_is_within_20_percent_of_measured_peak_rss() {
    let (measured, planned) = measure(&["--batch", "4", "--seq", "256", "--recompute"]);
    let err = (planned - measured).abs() / measured;
    eprintln!(
        "small 4x256 recompute: measured {measured:.0} B, planned {planned:.0} B, error {err:.3}"
    );
    assert!(err <= 0.20, "measured {measured} vs planned {planned}");
}

#[test]
fn plan_prints_a_table_and_json_per_dtype() {
    let table = swerl(&["plan", "--config", "small", "--batch", "4", "--seq", "256"]);
    for row in [
        "weights",
        "gradients",
        "optimizer state",
        "activations",
        "KV cache",
        "peak",
    ] {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    assert!(table.contains("f32") && table.contains("bf16"), "{table}");
    let json = swerl(&[
        "plan", "--config", "small", "--batch", "4", "--seq", "256", "--json",
    ]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    let (f, b) = (&rows[0], &rows[1]);
    assert_eq!(
        (f["dtype"].as_str(), b["dtype"].as_str()),
        (Some("f32"), Some("bf16"))
    );
    // 25.7M parameters: f32 weights ~103 MB; bf16 halves the weights but keeps f32 masters.
    let n = f["parameters"].as_u64().unwrap();
    assert_eq!(f["weights"].as_u64().unwrap(), 4 * n);
    assert_eq!(b["weights"].as_u64().unwrap(), 2 * n);
    assert_eq!(b["master_weights"].as_u64().unwrap(), 4 * n);
    assert_eq!(f["optimizer_state"].as_u64().unwrap(), 8 * n);
    let err = Command::new(env!("CARGO_BIN_EXE_swerl"))
        .args(["plan", "--config", "huge", "--seq", "8"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("unknown --config `huge`"));
}
