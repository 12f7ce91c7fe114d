//! Tensor parallelism in the GRPO trainer: two steps on a TP=2 × DP=2 mesh (and TP=4, whose
//! 2 KV heads are replicated) give the updated weights, rewards, loss and gradient norm of one
//! process on the same problems and rollouts; a TP checkpoint is one HF folder that resumes
//! to the uninterrupted run's weights bit for bit.

mod grpo_support;

use std::path::Path;

use grpo_support::{init_model, parallel_config, Parity, EOS};
use model::optim::AdamW;
use model::tp::{gather, Replicas};
use model::Llama;
use trainer::config::GrpoConfig;
use trainer::grpo::{compute_advantages, LossType, ScaleRewards};
use trainer::train::checkpoint::checkpoint_dir;
use trainer::train::dp_step::rank_seed;
use trainer::train::metrics::StepMetrics;
use trainer::train::policy::deep_copy;
use trainer::train::rollout::{self, Rollouts};
use trainer::train::step::{score_rollouts, train_on_rollouts, StepReport};
use trainer::train::tp_run::{run_mesh, TpTrainer};
use trainer::train::{Learner, StepSettings, Task};

fn config(model: &Path, out: &Path) -> GrpoConfig {
    let mut c = parallel_config(model, out);
    // Small enough that AdamW (which normalises each element's step) does not turn the
    // summation-order noise of near-zero gradients into visible weight differences.
    c.learning_rate = 1e-3;
    c.loss_type = LossType::Bnpo;
    c.scale_rewards = ScaleRewards::Batch;
    c.save_steps = 0;
    c
}

/// 4 query heads, 2 KV heads, vocabulary 16: TP=2 splits the KV heads, TP=4 replicates them.
fn weights(params: &model::LlamaParams) -> Vec<Vec<f32>> {
    params
        .tensors()
        .iter()
        .map(|t| t.to_f32_vec().unwrap())
        .collect()
}

fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-6)
}

/// One process doing what `dp` DP ranks do over `steps` steps: each step's problem shards
/// sampled with the ranks' seeds, then the whole batch through the single-process path.
fn serial(cfg: &GrpoConfig, dp: usize, steps: usize) -> (Vec<Vec<f32>>, Vec<StepReport>) {
    let model = Llama::load(&cfg.model).unwrap();
    let opt = AdamW::new(&model, cfg.optim_config()).unwrap();
    let reference =
        Llama::from_params(model.config.clone(), deep_copy(&model.params).unwrap()).unwrap();
    let mut learner = Learner::new(model, opt, Some(reference)).unwrap();
    let s = StepSettings::from_config(cfg, vec![EOS]);
    let mut task = Parity::default();
    let mut rng = runtime::Rng::new(cfg.seed);
    let mut reports = Vec::new();
    for step in 0..steps {
        let prompts = task.next_problems(cfg.per_step_problems).unwrap();
        let seed = rng.next_u64();
        let k = prompts.len() / dp;
        let (mut problem_of, mut raw) = (Vec::new(), Vec::new());
        for rank in 0..dp {
            let shard = &prompts[rank * k..(rank + 1) * k];
            let r = rollout::generate(&learner.model, shard, &s.rollout, rank_seed(seed, rank))
                .unwrap();
            problem_of.extend(r.problem_of.iter().map(|p| p + rank * k));
            raw.extend(r.completions);
        }
        let all = Rollouts::from_completions(problem_of, raw, &s.rollout);
        let rewards: Vec<f64> = score_rollouts(&all, &task)
            .iter()
            .map(|x| x.reward)
            .collect();
        let adv = compute_advantages(&rewards, s.rollout.num_generations, s.scale_rewards).unwrap();
        let mut rep =
            train_on_rollouts(&mut learner, &s, &prompts, &all, &adv, cfg.lr_at(step)).unwrap();
        rep.rewards = rewards;
        rep.completion_lens = all.completions.iter().map(Vec::len).collect();
        reports.push(rep);
    }
    (weights(&learner.model.params), reports)
}

/// Runs (or, with `resume`, continues) a `tp × dp` mesh to `steps`; every rank's gathered
/// full weights and metrics.
fn run_tp(
    cfg: &GrpoConfig,
    tp: usize,
    dp: usize,
    steps: usize,
    resume: Option<&Path>,
) -> Vec<(Vec<Vec<f32>>, Vec<StepMetrics>)> {
    let mut cfg = cfg.clone();
    cfg.steps = steps;
    run_mesh(tp, dp, |_, comms| {
        let mut t = match resume {
            Some(dir) => TpTrainer::resume(cfg.clone(), dir, Parity::default(), vec![EOS], comms)?,
            None => TpTrainer::new(cfg.clone(), Parity::default(), vec![EOS], comms)?,
        };
        let m = t.run(false)?;
        let full = gather(
            &t.learner.model.plan,
            t.comms.tp.as_mut(),
            &t.learner.model.local.params,
            Replicas::Identical,
        )?;
        Ok((weights(&full), m))
    })
    .unwrap()
}

#[test]
fn parallel_grpo_tp_dp_steps_equal_one_rank() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    for (tp, dp) in [(2, 2), (4, 1)] {
        let cfg = config(&init, &dir.path().join(format!("tp{tp}dp{dp}")));
        let (want, reps) = serial(&cfg, dp, 2);
        let ranks = run_tp(&cfg, tp, dp, 2, None);
        let start = weights(&Llama::load(&init).unwrap().params);
        let mut moved = 0.0;
        for (r, (got, metrics)) in ranks.iter().enumerate() {
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                let d = rel_diff(g, w);
                assert!(
                    d < 1e-5,
                    "tp={tp} dp={dp} rank {r} tensor {k}: rel diff {d:e}"
                );
                moved += rel_diff(g, &start[k]);
            }
            for (m, rep) in metrics.iter().zip(&reps) {
                let n = rep.rewards.len() as f64;
                let mean = rep.rewards.iter().sum::<f64>() / n;
                let lens = rep.completion_lens.iter().sum::<usize>() as f64 / n;
                let step = m.step;
                // Same rewards and lengths: the TP ranks sampled the single process's tokens.
                assert!((m.reward_mean - mean).abs() < 1e-12, "step {step}: reward");
                assert!(
                    (m.completion_length_mean - lens).abs() < 1e-12,
                    "step {step}: lengths"
                );
                assert!(
                    close(m.loss, rep.loss, 1e-5),
                    "tp={tp} dp={dp} step {step}: loss {} vs {}",
                    m.loss,
                    rep.loss
                );
                assert!(
                    close(m.kl, rep.kl, 1e-5),
                    "step {step}: kl {} vs {}",
                    m.kl,
                    rep.kl
                );
                assert!(
                    close(m.grad_norm, rep.grad_norm, 1e-5),
                    "step {step}: grad norm {} vs {}",
                    m.grad_norm,
                    rep.grad_norm
                );
                assert!(m.comm_bytes > 0, "TP collectives are counted");
            }
        }
        assert!(moved > 1e-4, "the steps did not move the weights");
        assert!(
            reps.iter().any(|r| r.grad_norm > cfg.max_grad_norm),
            "clipping was not exercised: {:?}",
            reps.iter().map(|r| r.grad_norm).collect::<Vec<_>>()
        );
    }
}

#[test]
fn parallel_grpo_tp_checkpoint_is_one_hf_folder_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let cfg = config(&init, &dir.path().join("a"));
    let straight = run_tp(&cfg, 2, 2, 2, None);

    let mut b = cfg.clone();
    b.output_dir = dir.path().join("b");
    run_tp(&b, 2, 2, 1, None);
    let ckpt = checkpoint_dir(&b.output_dir, 1);
    // The gathered checkpoint is the one-rank step's model.
    let (want, _) = serial(&cfg, 2, 1);
    let saved = weights(&Llama::load(&ckpt).unwrap().params);
    for (k, (s, w)) in saved.iter().zip(&want).enumerate() {
        assert!(rel_diff(s, w) < 1e-5, "checkpoint tensor {k}");
    }
    let resumed = run_tp(&b, 2, 2, 2, Some(&ckpt));
    for (r, ((got, _), (want, _))) in resumed.iter().zip(&straight).enumerate() {
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            let (g, w): (Vec<u32>, Vec<u32>) = (
                g.iter().map(|x| x.to_bits()).collect(),
                w.iter().map(|x| x.to_bits()).collect(),
            );
            assert_eq!(g, w, "rank {r} tensor {k}: resumed run differs");
        }
    }
}

mod cli_support;

#[test]
fn parallel_cli_train_tp2_dp2_matches_dp2() {
    use cli_support::{metrics, mined_dataset, stderr, swerl, write_config};
    let dir = tempfile::tempdir().unwrap();
    let data = mined_dataset(dir.path());
    let cfg = write_config(dir.path(), &data);
    let run = |out: &Path, degrees: &[&str]| {
        let o = swerl()
            .args(["train", "--quiet"])
            .args(degrees)
            .arg("--config")
            .arg(&cfg)
            .arg("--output_dir")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{degrees:?}: {}", stderr(&o));
    };
    let (dp, tp) = (dir.path().join("dp"), dir.path().join("tp"));
    run(&dp, &["--dp", "2"]);
    run(&tp, &["--tp", "2", "--dp", "2"]);
    let (a, b) = (metrics(&dp), metrics(&tp));
    assert_eq!(
        b.len(),
        2,
        "one metrics line per step, from the main rank only"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(y["dp_world"], 2);
        assert!(y["comm_bytes"].as_u64().unwrap() > x["comm_bytes"].as_u64().unwrap());
        for k in ["reward_mean", "completion_length_mean", "format_error_rate"] {
            assert_eq!(x[k], y[k], "{k}: --tp 2 sampled other tokens");
        }
        for k in ["loss", "kl", "grad_norm"] {
            let (u, v) = (x[k].as_f64().unwrap(), y[k].as_f64().unwrap());
            assert!(close(v, u, 1e-5), "{k}: {v} at --tp 2 vs {u}");
        }
    }
    let load = |d: &Path| weights(&Llama::load(&checkpoint_dir(d, 2)).unwrap().params);
    for (k, (g, w)) in load(&tp).iter().zip(&load(&dp)).enumerate() {
        let d = rel_diff(g, w);
        assert!(d < 1e-5, "checkpoint tensor {k}: rel diff {d:e}");
    }
}

#[test]
fn parallel_cli_train_tp_that_does_not_divide_the_heads_fails_clearly() {
    let model = cli_support::fixture_model();
    let o = cli_support::swerl()
        .args(["train", "--quiet", "--tp", "3", "--model"])
        .arg(&model)
        .args(["--data_dir", "unused"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = cli_support::stderr(&o);
    assert!(
        e.contains("--tp 3") && e.contains("num_attention_heads 4 is not divisible by tp=3"),
        "{e}"
    );
}
