//! `swerl quickstart`'s pipeline end to end on a small generated git repository: mining, BPE
//! tokenizer, tiny Llama-3, SFT warm-up, GRPO, plots, and a model folder that loads and
//! generates.

use std::path::Path;
use std::process::Command;

use model::{GenerateConfig, Llama, Message, Tokenizer};
use trainer::quickstart::{run, QuickstartOptions};

fn git(dir: &Path, args: &[&str]) {
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

/// A repository whose history is a series of small bug fixes to a few Python files.
fn make_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    let mut body: Vec<String> = (0..6)
        .map(|i| format!("def f{i}(x):\n    return x + {i}\n"))
        .collect();
    let write = |body: &[String]| std::fs::write(dir.join("calc.py"), body.join("\n")).unwrap();
    write(&body);
    std::fs::write(dir.join("util.py"), "def helper(y):\n    return y * 2\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "Initial version"]);
    for i in 0..6 {
        body[i] = format!("def f{i}(x):\n    return x - {i}\n");
        write(&body);
        git(
            dir,
            &[
                "commit",
                "-q",
                "-am",
                &format!("Fix f{i} to subtract\n\nf{i} must subtract {i} from its argument."),
            ],
        );
    }
}

#[test]
fn quickstart_runs_end_to_end_and_leaves_a_loadable_model() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    make_repo(&repo);
    let opts = QuickstartOptions {
        repo,
        out: tmp.path().join("out"),
        vocab_size: 512,
        sft_steps: 12,
        grpo_steps: 2,
        seed: 1,
        progress: false,
    };
    let r = run(&opts).unwrap();
    assert!(r.instances >= 3, "{} instances", r.instances);
    assert!(r.demos >= 1);
    assert!(
        r.sft_losses.last().unwrap() < r.sft_losses.first().unwrap(),
        "{:?}",
        r.sft_losses
    );
    assert_eq!(r.rewards.len(), 2);
    assert!(r.rewards.iter().all(|x| (-1.0..=1.0).contains(x)));
    for f in ["reward.svg", "loss.svg", "kl.svg", "metrics.jsonl"] {
        assert!(r.run_dir.join(f).is_file(), "missing {f}");
    }
    // The output is a Hugging Face folder: model + tokenizer + chat template.
    let m = Llama::load(&r.model_dir).unwrap();
    let tok = Tokenizer::from_dir(&r.model_dir).unwrap();
    assert_eq!(tok.vocab_size(), m.config.vocab_size);
    assert!(tok.token_to_id("<think>").is_some() && tok.token_to_id("</think>").is_some());
    let ids = tok
        .encode_chat(&[Message::new("user", "fix f1")], true)
        .unwrap();
    let out = m
        .generate(
            &[ids],
            &GenerateConfig::greedy(8, m.config.eos_token_ids.clone()),
        )
        .unwrap();
    assert!(!out[0].is_empty());
}
