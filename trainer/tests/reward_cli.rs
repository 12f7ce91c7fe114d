//! `swerl reward` end to end: the built binary on the fixture vectors.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

fn fixture_vectors() -> Vec<Value> {
    let dir = std::env::var_os("SWERL_REWARD_FIXTURE").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/swerl-reward"
            ))
        },
        PathBuf::from,
    );
    std::fs::read_to_string(dir.join("vectors.jsonl"))
        .expect("reading vectors.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn swerl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_swerl"))
        .args(args)
        .output()
        .expect("running swerl")
}

fn write_jsonl(dir: &tempfile::TempDir, name: &str, rows: &[Value]) -> String {
    let path = dir.path().join(name);
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn scores_every_vector_in_order_with_summary() {
    let vectors = fixture_vectors();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Value> = vectors
        .iter()
        .map(|v| {
            let mut c = json!({
                "instance_id": v["name"],
                "code_context": v["code_context"],
                "oracle_new_content": v["oracle_new_content"],
            });
            for key in ["output", "pred_new_content"] {
                if let Some(x) = v.get(key) {
                    c[key] = x.clone();
                }
            }
            c
        })
        .collect();
    let data = write_jsonl(&dir, "cases.jsonl", &cases);
    let out = swerl(&["reward", "--data", &data, "--threads", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), vectors.len());
    let mut errors = 0;
    for (v, got) in vectors.iter().zip(&lines) {
        assert_eq!(got["instance_id"], v["name"]);
        let want = v["expected_reward"].as_f64().unwrap();
        assert!(
            (got["reward"].as_f64().unwrap() - want).abs() <= 1e-12,
            "{}",
            v["name"]
        );
        assert_eq!(
            got["format_error"].is_null(),
            v["error"].is_null(),
            "{}",
            v["name"]
        );
        errors += usize::from(!v["error"].is_null());
        let sims = v["similarities"].as_array().cloned().unwrap_or_default();
        let got_sims = got["similarities"].as_array().unwrap();
        assert_eq!(sims.len(), got_sims.len());
        for (w, g) in sims.iter().zip(got_sims) {
            assert_eq!(w["path"], g["path"]);
            assert_eq!(w["similarity"], g["similarity"]);
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = format!("{} cases: mean reward", vectors.len());
    assert!(stderr.contains(&summary), "{stderr}");
    assert!(
        stderr.contains(&format!("format errors {errors} (")),
        "{stderr}"
    );
}

#[test]
fn completions_are_keyed_by_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = json!({"a.py": "x = 1\ny = 2\n"});
    let oracle = json!({"a.py": "x = 1\ny = 3\n"});
    let data = write_jsonl(
        &dir,
        "problems.jsonl",
        &[json!({"instance_id": "p1", "code_context": ctx, "oracle_new_content": oracle})],
    );
    let good = "<think>y is wrong</think><solution>```python\n### a.py\n<<<<<<< SEARCH\ny = 2\n=======\ny = 3\n>>>>>>> REPLACE\n```</solution>";
    let completions = write_jsonl(
        &dir,
        "completions.jsonl",
        &[
            json!({"instance_id": "p1", "output": good}),
            json!({"instance_id": "p1", "output": "no tags"}),
        ],
    );
    let out = swerl(&[
        "reward",
        "--data",
        &data,
        "--completions",
        &completions,
        "--patches",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["reward"], 1.0);
    assert_eq!(
        lines[0]["similarities"][0]["pred_change"],
        "@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3"
    );
    assert_eq!(lines[1]["reward"], -1.0);
    assert_eq!(lines[1]["format_error_kind"], "tag_count");

    let bad = write_jsonl(&dir, "bad.jsonl", &[json!({"instance_id": "q"})]);
    let out = swerl(&["reward", "--data", &bad]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.jsonl:1"), "{stderr}");
}
