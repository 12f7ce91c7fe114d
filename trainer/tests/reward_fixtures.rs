//! The reward against the `swerl-reward` vectors produced by the paper's Python code, and the
//! difflib port against CPython's ratios. Folder override: `SWERL_REWARD_FIXTURE`.

use std::path::PathBuf;

use serde_json::Value;
use trainer::reward::{
    calculate_reward, calculate_search_replace_reward, Files, RewardOutcome, SequenceMatcher,
};

fn fixture_dir() -> PathBuf {
    std::env::var_os("SWERL_REWARD_FIXTURE").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/swerl-reward"
            ))
        },
        PathBuf::from,
    )
}

fn read_jsonl(name: &str) -> Vec<Value> {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture line is JSON"))
        .collect()
}

fn files(v: &Value) -> Files {
    serde_json::from_value(v.clone()).expect("a {path: text} object")
}

fn run_case(case: &Value) -> RewardOutcome {
    let ctx = files(&case["code_context"]);
    let oracle = files(&case["oracle_new_content"]);
    match case["api"].as_str().unwrap() {
        "calculate_search_replace_reward" => {
            calculate_search_replace_reward(&ctx, &oracle, case["output"].as_str().unwrap())
        }
        "calculate_reward" => calculate_reward(&ctx, &oracle, &files(&case["pred_new_content"])),
        other => panic!("unknown api {other}"),
    }
}

#[test]
fn every_vector_matches_the_reference() {
    let cases = read_jsonl("vectors.jsonl");
    assert!(cases.len() >= 100, "only {} vectors", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let got = run_case(case);
        let want = case["expected_reward"].as_f64().unwrap();
        if (got.reward - want).abs() > 1e-12 {
            failures.push(format!("{name}: reward {} != {want}", got.reward));
        }
        let want_err = case["error"].as_str();
        let got_err = got.format_error.as_ref().map(|e| e.to_string());
        if want_err.is_some() != got_err.is_some() {
            failures.push(format!("{name}: error {got_err:?} != {want_err:?}"));
        } else if want_err != got_err.as_deref() {
            // Messages may differ by spec; ours mirror the reference, so report drift.
            failures.push(format!("{name}: message {got_err:?} != {want_err:?}"));
        }
        for key in ["thought", "answer"] {
            let got_v = if key == "thought" {
                &got.thought
            } else {
                &got.answer
            };
            if let Some(w) = case.get(key).and_then(Value::as_str) {
                if got_v.as_deref() != Some(w) {
                    failures.push(format!("{name}: {key} differs"));
                }
            }
        }
        let want_sims = case["similarities"].as_array().cloned().unwrap_or_default();
        if want_sims.len() != got.similarities.len() {
            failures.push(format!(
                "{name}: {} files != {}",
                got.similarities.len(),
                want_sims.len()
            ));
            continue;
        }
        for (w, g) in want_sims.iter().zip(&got.similarities) {
            let ok = w["path"] == g.path.as_str()
                && w["pred_change"] == g.pred_change.as_str()
                && w["oracle_change"] == g.oracle_change.as_str()
                && w["similarity"].as_f64() == Some(g.similarity);
            if !ok {
                failures.push(format!(
                    "{name}: file {} differs (similarity {} vs {})",
                    g.path, g.similarity, w["similarity"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_difflib_pair_matches_cpython() {
    let pairs = read_jsonl("difflib_ratio.jsonl");
    assert!(pairs.len() >= 100);
    let mut failures = Vec::new();
    for p in &pairs {
        let name = p["name"].as_str().unwrap();
        let (a, b) = (p["a"].as_str().unwrap(), p["b"].as_str().unwrap());
        assert_eq!(a.chars().count() as u64, p["len_a"].as_u64().unwrap());
        for (autojunk, key) in [(true, "autojunk_true"), (false, "autojunk_false")] {
            let mut sm = SequenceMatcher::from_chars(a, b, autojunk);
            let ratio = sm.ratio();
            let matches = sm.matches() as u64;
            if Some(ratio) != p[format!("ratio_{key}")].as_f64()
                || Some(matches) != p[format!("matches_{key}")].as_u64()
            {
                failures.push(format!(
                    "{name} {key}: ratio {ratio} matches {matches}, want {} {}",
                    p[format!("ratio_{key}")],
                    p[format!("matches_{key}")]
                ));
            }
            if autojunk {
                let pop = sm.popular_count() as u64;
                if Some(pop) != p["b_popular_count"].as_u64() {
                    failures.push(format!("{name}: popular {pop} != {}", p["b_popular_count"]));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
