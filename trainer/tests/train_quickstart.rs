//! `swerl quickstart`'s pipeline end to end on a small generated git repository: mining, BPE
//! tokenizer, tiny Llama-3, SFT warm-up, GRPO, plots, and a model folder that loads and
//! generates.

mod cli_support;

use std::path::Path;
use std::process::Command;

use cli_support::git;
use model::{GenerateConfig, Llama, Message, Tokenizer};
use trainer::quickstart::{run, QuickstartOptions};
use trainer::train::metrics::read_metrics;

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
    // CI-sized: the learning itself is shown by train_loop.rs and by the quickstart's run.
    let opts = QuickstartOptions {
        vocab_size: 512,
        sft_steps: 12,
        grpo_steps: 2,
        per_step_problems: 2,
        num_generations: 2,
        max_completion_length: 96,
        seed: 1,
        progress: false,
        ..QuickstartOptions::new(repo, tmp.path().join("out"))
    };
    let r = run(&opts).unwrap();
    // The initial commit and the six fixes; every fix has an exact oracle answer inside its
    // window and within the answer length.
    assert_eq!(r.instances, 7);
    assert!(r.demos >= 6, "{} problems", r.demos);
    assert!(
        r.sft_losses.last().unwrap() < r.sft_losses.first().unwrap(),
        "{:?}",
        r.sft_losses
    );
    assert_eq!(r.rewards.len(), 2);
    assert!(r.rewards.iter().all(|x| (-1.0..=1.0).contains(x)));
    // metrics.jsonl holds one line per step with finite rewards and timings.
    let metrics = read_metrics(&r.run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.iter().map(|m| m.step).collect::<Vec<_>>(), [1, 2]);
    for m in &metrics {
        assert!(m.reward_mean.is_finite() && m.loss.is_finite() && m.time_s.total > 0.0);
        assert!((0.0..=1.0).contains(&m.format_error_rate));
    }
    assert_eq!(
        r.rewards,
        metrics.iter().map(|m| m.reward_mean).collect::<Vec<_>>()
    );
    for f in ["reward.svg", "loss.svg", "kl.svg"] {
        let svg = std::fs::read_to_string(r.run_dir.join(f)).unwrap();
        assert!(svg.contains("<svg"), "{f} is not an SVG");
    }
    // The GRPO problems are a dataset `swerl train` can use.
    let problems = datagen::Dataset::open(&tmp.path().join("out/problems")).unwrap();
    assert_eq!(problems.len(), r.demos);
    // The output is a Hugging Face folder that `swerl generate` loads: model + tokenizer +
    // chat template, and its answers start in the trained format.
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
    let bin = env!("CARGO_BIN_EXE_swerl");
    let gen = Command::new(bin)
        .args(["generate", "--model"])
        .arg(&r.model_dir)
        .args(["--prompt", "fix f2", "--chat", "--max-new-tokens", "4"])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "swerl generate: {}",
        String::from_utf8_lossy(&gen.stderr)
    );
}

#[test]
fn windowed_oracle_answers_score_one_on_the_whole_files() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    make_repo(&repo);
    let data = tmp.path().join("data");
    assert_eq!(trainer::quickstart::mine(&repo, &data).unwrap(), 7);
    let ds = datagen::Dataset::open(&data).unwrap();
    let fixes: Vec<_> = (0..ds.len())
        .map(|i| ds.get(i).unwrap())
        .filter(|inst| inst.title.starts_with("Fix"))
        .collect();
    assert_eq!(fixes.len(), 6);
    for inst in fixes {
        let answer = trainer::quickstart::windowed_oracle_answer(&inst, 1).unwrap();
        // The SEARCH text lies inside the 1-line window the prompt shows.
        let (old_w, _) = trainer::quickstart::windowed_files(&inst, 1);
        let search = answer
            .split("<<<<<<< SEARCH\n")
            .nth(1)
            .and_then(|s| s.split("\n=======").next())
            .unwrap();
        assert!(old_w["calc.py"].contains(search), "{answer}");
        assert!(old_w["calc.py"].lines().count() <= 3, "{old_w:?}");
        let r = trainer::reward::calculate_search_replace_reward(
            &inst.code_context,
            &inst.oracle_new_content,
            &answer,
        );
        assert_eq!(r.reward, 1.0);
    }
}
