//! `swerl train` through the real binary: a TOML config plus `--key value` overrides on a
//! mined toy repository and the tiny-llama fixture → metrics JSONL with the documented
//! fields and a checkpoint; bad keys and values fail naming the key; `--resume latest`
//! continues to the same weights as an uninterrupted run.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use cli_support::{fixture_model, metrics, mined_dataset, stderr, swerl};
use serde_json::Value;

/// The config file: a short prompt template keeps prompts within the fixture's 512 positions.
fn write_config(root: &Path, data: &Path) -> PathBuf {
    let template = root.join("prompt.toml");
    std::fs::write(
        &template,
        "system = \"Think in <think></think>, answer in <solution></solution>.\"\n\
         user = \"\"\"{{ problem_statement }}\n{{ code_context }}\"\"\"\n",
    )
    .unwrap();
    let cfg = root.join("grpo.toml");
    let text = format!(
        "model = {:?}\ndata_dir = {:?}\nprompt_template = {:?}\noutput_dir = {:?}\n\
         per_step_problems = 2\nnum_generations = 3\nmax_prompt_length = 400\n\
         max_completion_length = 6\nlearning_rate = 1e-3\nbeta = 0.04\nsave_steps = 2\n\
         steps = 100\nseed = 5\n",
        fixture_model().display().to_string(),
        data.display().to_string(),
        template.display().to_string(),
        root.join("out").display().to_string(),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn train(cfg: &Path, extra: &[&str]) -> Output {
    swerl()
        .args(["train", "--quiet", "--config"])
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn train_runs_from_a_config_with_overrides_checkpoints_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = mined_dataset(root);
    let cfg = write_config(root, &data);
    let (a, b) = (root.join("a"), root.join("b"));

    // Overrides beat the file: 4 steps (not 100) into `a`, with a different seed.
    let out = train(
        &cfg,
        &[
            "--steps",
            "4",
            "--output_dir",
            a.to_str().unwrap(),
            "--seed=9",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = metrics(&a);
    assert_eq!(rows.len(), 4);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["step"], i + 1);
        for k in [
            "learning_rate",
            "loss",
            "reward_mean",
            "reward_std",
            "reward_min",
            "reward_max",
            "format_error_rate",
            "clip_fraction",
            "kl",
            "grad_norm",
            "completion_length_mean",
            "truncated_rate",
            "generation_tokens_per_s",
            "training_tokens_per_s",
        ] {
            assert!(r[k].as_f64().is_some_and(f64::is_finite), "{k} in {r}");
        }
        for k in [
            "generate",
            "reward",
            "logprobs",
            "backward",
            "optimizer",
            "total",
        ] {
            assert!(
                r["time_s"][k].as_f64().is_some_and(|t| t >= 0.0),
                "{k} in {r}"
            );
        }
        assert!(r["completion_length_max"].as_u64().unwrap() <= 6);
        let rmin = r["reward_min"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&rmin));
    }
    assert_eq!(rows[0]["learning_rate"], 1e-3);
    // Random weights write no well-formed answer: every sample is a format error.
    assert!(rows.iter().all(|r| r["format_error_rate"] == 1.0));
    for step in [2, 4] {
        let ck = a.join(format!("checkpoint-{step:06}"));
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "optimizer.safetensors",
            "trainer_state.json",
        ] {
            assert!(ck.join(f).is_file(), "{} lacks {f}", ck.display());
        }
        let state: Value =
            serde_json::from_slice(&std::fs::read(ck.join("trainer_state.json")).unwrap()).unwrap();
        assert_eq!(state["step"], step);
        assert_eq!(state["config"]["seed"], 9);
        assert_eq!(state["config"]["steps"], 4);
    }

    // The same run stopped after 2 steps, then resumed from the latest checkpoint to 4.
    let b_dir = ["--output_dir", b.to_str().unwrap(), "--seed", "9"];
    let out = train(&cfg, &[&["--steps", "2"][..], &b_dir].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(metrics(&b).len(), 2);
    let out = train(
        &cfg,
        &[&["--resume", "latest", "--steps", "4"][..], &b_dir].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(metrics(&b).len(), 4);
    let weights = |d: &Path| std::fs::read(d.join("checkpoint-000004/model.safetensors")).unwrap();
    assert!(weights(&a) == weights(&b), "resumed weights differ");
    let strip = |rows: Vec<Value>| -> Vec<Value> {
        rows.into_iter()
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                for k in ["time_s", "generation_tokens_per_s", "training_tokens_per_s"] {
                    o.remove(k);
                }
                r
            })
            .collect()
    };
    assert_eq!(strip(metrics(&a)), strip(metrics(&b)));

    // A resume with a trajectory-changing override is refused.
    let out = train(
        &cfg,
        &[
            &["--resume", "latest", "--learning_rate", "0.5"][..],
            &b_dir,
        ]
        .concat(),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("config differs"), "{}", stderr(&out));
}

#[test]
fn bad_keys_and_values_fail_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cfg = write_config(root, &root.join("no-data"));
    let out_dir = root.join("out");
    let cases: [(&[&str], &str); 6] = [
        (&["--stepz", "3"], "unknown field `stepz`"),
        (&["--steps", "many"], "in `steps`"),
        (&["--loss_type", "ppo"], "in `loss_type`"),
        (&["--temperature", "0"], "temperature = 0 must be > 0"),
        (&["--num_generations", "1"], "num_generations = 1"),
        (&["--steps"], "`--steps`: missing value"),
    ];
    for (args, key) in cases {
        let out = train(&cfg, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains(key), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!out_dir.exists());
    }
    // A bad line in the file names the file.
    std::fs::write(root.join("bad.toml"), "steps = [\n").unwrap();
    let out = train(&root.join("bad.toml"), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.toml"), "{}", stderr(&out));
    // A missing dataset names its path.
    let out = train(&cfg, &["--steps", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-data"), "{}", stderr(&out));
}
