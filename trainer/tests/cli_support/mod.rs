//! Shared helpers for tests that run `swerl train` through the real binary: a toy repository
//! of four one-line fixes mined into a dataset, and a small GRPO config on the fixture model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn swerl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swerl"))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The tiny-llama fixture folder, overridable by `SWERL_FIXTURE`.
pub fn fixture_model() -> PathBuf {
    match std::env::var_os("SWERL_FIXTURE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/tiny-llama"
        )),
    }
}

/// Runs `git` in `dir` with a fixed author and date (reproducible commit ids); panics with
/// git's stderr if it fails.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A toy repository of four one-line fixes, mined with `swerl mine --all-commits`.
pub fn mined_dataset(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let mut body: Vec<String> = (0..4)
        .map(|i| format!("def f{i}(x):\n    return x + {i}\n"))
        .collect();
    std::fs::write(repo.join("calc.py"), body.join("\n")).unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "Initial version"]);
    for i in 0..4 {
        body[i] = format!("def f{i}(x):\n    return x - {i}\n");
        std::fs::write(repo.join("calc.py"), body.join("\n")).unwrap();
        git(
            &repo,
            &["commit", "-q", "-am", &format!("Fix f{i} to subtract")],
        );
    }
    let data = root.join("data");
    let out = swerl()
        .args(["mine", "--all-commits", "--relevant-k", "0", "--out"])
        .arg(&data)
        .arg(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    data
}

/// Two steps of 2 problems × 3 samples on the fixture; a short template keeps prompts within
/// its 512 positions.
pub fn write_config(root: &Path, data: &Path) -> PathBuf {
    let template = root.join("prompt.toml");
    std::fs::write(
        &template,
        "system = \"Answer in <solution></solution>.\"\n\
         user = \"\"\"{{ problem_statement }}\n{{ code_context }}\"\"\"\n",
    )
    .unwrap();
    let cfg = root.join("grpo.toml");
    let text = format!(
        "model = {:?}\ndata_dir = {:?}\nprompt_template = {:?}\n\
         per_step_problems = 2\nnum_generations = 3\nmax_prompt_length = 400\n\
         max_completion_length = 6\nlearning_rate = 1e-3\nbeta = 0.04\nsave_steps = 0\n\
         steps = 2\nseed = 5\n",
        fixture_model().display().to_string(),
        data.display().to_string(),
        template.display().to_string(),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A port the OS reports free now, for a launcher's rendezvous.
pub fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}
