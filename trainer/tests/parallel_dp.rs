//! Data parallelism: a GRPO step on DP=2 in-process ranks gives the update one rank computes
//! on the same problems and rollouts (every loss type's normaliser, batch-level reward
//! scaling), the ranks stay bit-identical, only rank 0 writes; an SFT step on DP=2 equals DP=1.

mod grpo_support;

use std::path::{Path, PathBuf};

use grpo_support::{init_model, parallel_config, Parity, EOS};
use model::layers::lm_head::{shifted_targets, IGNORE};
use model::optim::{AdamW, OptimConfig};
use model::{Activations, GradBuffers, Llama};
use runtime::comm::ThreadGroup;
use runtime::Tensor;
use trainer::config::GrpoConfig;
use trainer::dp::DataParallel;
use trainer::grpo::{compute_advantages, LossType, ScaleRewards};
use trainer::train::dp_step::rank_seed;
use trainer::train::metrics::{read_metrics, StepMetrics};
use trainer::train::policy::deep_copy;
use trainer::train::rollout::{self, Rollouts};
use trainer::train::step::{score_rollouts, train_on_rollouts, StepReport};
use trainer::train::{Learner, Reward, Scored, StepSettings, Task, Trainer};

fn config(model: &Path, out: &Path, loss: LossType, scale: ScaleRewards) -> GrpoConfig {
    let mut c = parallel_config(model, out);
    c.loss_type = loss;
    c.scale_rewards = scale;
    c
}

fn weights(m: &Llama) -> Vec<Vec<f32>> {
    m.params
        .tensors()
        .iter()
        .map(|t| t.to_f32_vec().unwrap())
        .collect()
}

fn grads(l: &Learner) -> Vec<Vec<f32>> {
    l.grads()
        .tensors()
        .iter()
        .map(|t| t.to_f32_vec().unwrap())
        .collect()
}

/// Weights after AdamW steps from gradients equal up to rounding: Adam's first update is
/// `lr * sign(g)` wherever |g| >> eps, so a gradient within rounding of 0 can flip a single
/// element by up to 2 lr. All but 0.5% of the elements (or one) must agree to 1e-6, and the
/// tensor to 1e-4.
fn close_after_adam(got: &[f32], want: &[f32], what: &str) {
    let d = rel_diff(got, want);
    let off = got
        .iter()
        .zip(want)
        .filter(|(a, b)| (*a - *b).abs() > 1e-6)
        .count();
    assert!(
        d < 1e-4 && off <= (got.len() / 200).max(1),
        "{what}: relative difference {d:e}, {off} of {} elements off by > 1e-6",
        got.len()
    );
}

fn bits(w: &[Vec<f32>]) -> Vec<Vec<u32>> {
    w.iter()
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect()
}

fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

/// `steps` steps of `world` in-process DP ranks; returns each rank's weights and metrics.
type RankOut = (Vec<Vec<f32>>, Vec<StepMetrics>, Vec<Vec<f32>>);

fn run_dp(cfg: &GrpoConfig, world: usize, steps: usize) -> Vec<RankOut> {
    std::thread::scope(|s| {
        let hs: Vec<_> = ThreadGroup::new(world)
            .unwrap()
            .into_iter()
            .map(|comm| {
                s.spawn(move || {
                    let model = Llama::load(&cfg.model).unwrap();
                    let mut t = Trainer::new(cfg.clone(), model, Parity::default(), vec![EOS])
                        .unwrap()
                        .with_dp(DataParallel::new(Box::new(comm)));
                    let mut c = cfg.clone();
                    c.steps = steps;
                    t.cfg.steps = steps;
                    let m = t.run(false).unwrap();
                    (weights(&t.learner.model), m, grads(&t.learner))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// One rank doing what the DP=2 step does: the same two shards sampled with the ranks'
/// seeds, then one batch through the single-process training path.
fn serial_step(cfg: &GrpoConfig) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, StepReport) {
    let model = Llama::load(&cfg.model).unwrap();
    let opt = AdamW::new(&model, cfg.optim_config()).unwrap();
    let reference =
        Llama::from_params(model.config.clone(), deep_copy(&model.params).unwrap()).unwrap();
    let mut learner = Learner::new(model, opt, Some(reference)).unwrap();
    let s = StepSettings::from_config(cfg, vec![EOS]);
    let mut task = Parity::default();
    let prompts = task.next_problems(cfg.per_step_problems).unwrap();
    let seed = runtime::Rng::new(cfg.seed).next_u64();
    let (mut problem_of, mut raw) = (Vec::new(), Vec::new());
    for rank in 0..2 {
        let shard = &prompts[rank * 2..rank * 2 + 2];
        let r =
            rollout::generate(&learner.model, shard, &s.rollout, rank_seed(seed, rank)).unwrap();
        problem_of.extend(r.problem_of.iter().map(|p| p + rank * 2));
        raw.extend(r.completions);
    }
    let all = Rollouts::from_completions(problem_of, raw, &s.rollout);
    let rewards: Vec<f64> = score_rollouts(&all, &task)
        .iter()
        .map(|x| x.reward)
        .collect();
    let adv = compute_advantages(&rewards, s.rollout.num_generations, s.scale_rewards).unwrap();
    let mut report =
        train_on_rollouts(&mut learner, &s, &prompts, &all, &adv, cfg.lr_at(0)).unwrap();
    report.rewards = rewards;
    (weights(&learner.model), grads(&learner), report)
}

#[test]
fn parallel_grpo_dp2_step_equals_one_rank_on_the_same_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let cases = [
        (LossType::Bnpo, ScaleRewards::Batch),
        (LossType::Grpo, ScaleRewards::Group),
        (LossType::DrGrpo, ScaleRewards::None),
    ];
    for (i, (loss, scale)) in cases.into_iter().enumerate() {
        let cfg = config(&init, &dir.path().join(format!("out{i}")), loss, scale);
        let (want, want_grads, rep) = serial_step(&cfg);
        let ranks = run_dp(&cfg, 2, 1);
        assert_eq!(
            bits(&ranks[0].0),
            bits(&ranks[1].0),
            "{loss:?}: DP replicas diverged"
        );
        let init_w = weights(&Llama::load(&init).unwrap());
        let mut moved = 0.0f64;
        for (k, (got, w)) in ranks[0].0.iter().zip(&want).enumerate() {
            close_after_adam(got, w, &format!("{loss:?}/{scale:?} weights {k}"));
            moved += rel_diff(got, &init_w[k]);
        }
        // Adam's first steps are nearly blind to the gradient's scale, so check it directly.
        for (k, (got, w)) in ranks[0].2.iter().zip(&want_grads).enumerate() {
            let d = rel_diff(got, w);
            assert!(
                d < 1e-4,
                "{loss:?}/{scale:?} gradient {k}: relative difference {d:e}"
            );
        }
        assert!(moved > 1e-4, "{loss:?}: the step did not move the weights");
        let m = &ranks[0].1[0];
        let n = rep.rewards.len() as f64;
        let mean = rep.rewards.iter().sum::<f64>() / n;
        assert!(
            (m.reward_mean - mean).abs() < 1e-12,
            "{loss:?}: reward mean"
        );
        assert!(
            (m.loss - rep.loss).abs() <= 1e-6 * rep.loss.abs().max(1e-3),
            "{loss:?}: loss {} vs {}",
            m.loss,
            rep.loss
        );
        assert!(
            (m.kl - rep.kl).abs() <= 1e-6 * rep.kl.abs().max(1e-6),
            "{loss:?}: kl {} vs {}",
            m.kl,
            rep.kl
        );
        assert_eq!(m.dp_world, 2);
        assert!(m.comm_bytes > 4 * 2 * 1000, "comm bytes {}", m.comm_bytes);
    }
}

#[test]
fn parallel_grpo_dp_run_keeps_replicas_identical_and_only_rank0_writes() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let out = dir.path().join("run");
    let mut cfg = config(&init, &out, LossType::Bnpo, ScaleRewards::Group);
    cfg.save_steps = 0;
    let ranks = run_dp(&cfg, 2, 2);
    assert_eq!(bits(&ranks[0].0), bits(&ranks[1].0));
    let lines = read_metrics(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(
        lines.len(),
        2,
        "one metrics line per step, from rank 0 only"
    );
    assert_eq!(lines, ranks[0].1);
    let ckpts: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"))
        .collect();
    assert_eq!(ckpts.len(), 1, "rank 0 saves the final checkpoint once");
}

#[test]
fn parallel_uneven_problem_split_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let mut cfg = config(
        &init,
        &dir.path().join("o"),
        LossType::Grpo,
        ScaleRewards::Group,
    );
    cfg.per_step_problems = 3;
    let errs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = ThreadGroup::new(2)
            .unwrap()
            .into_iter()
            .map(|comm| {
                let cfg = cfg.clone();
                s.spawn(move || {
                    let model = Llama::load(&cfg.model).unwrap();
                    let mut t = Trainer::new(cfg, model, Parity::default(), vec![EOS])
                        .unwrap()
                        .with_dp(DataParallel::new(Box::new(comm)));
                    t.step_once().unwrap_err().to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for e in errs {
        assert!(e.contains("3 items do not split evenly over 2"), "{e}");
    }
}

/// The tiny-llama fixture folder, overridable by `SWERL_FIXTURE`.
fn fixture() -> PathBuf {
    match std::env::var_os("SWERL_FIXTURE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/tiny-llama"
        )),
    }
}

/// Backward of the token-sum loss over `rows` scaled by `scale`, with the first `masked[i]`
/// targets of row `i` ignored (so ranks hold different target counts).
fn sft_grads(
    m: &Llama,
    rows: &[Vec<i64>],
    masked: &[usize],
    scale: f32,
) -> (model::LlamaParams, usize) {
    let (b, t) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.concat();
    let ids = Tensor::from_vec(flat.clone(), &[b, t]).unwrap();
    let mut tg = shifted_targets(&flat, b, t, None)
        .unwrap()
        .to_vec::<i64>()
        .unwrap();
    for (i, &k) in masked.iter().enumerate() {
        tg[i * t..i * t + k].fill(IGNORE);
    }
    let count = tg.iter().filter(|&&x| x != IGNORE).count();
    let targets = Tensor::from_vec(tg, &[b, t]).unwrap();
    let mut acts = Activations::new(&m.config, b, t, false, &m.device).unwrap();
    let mut g = GradBuffers::new(&m.config, b, t, &m.device).unwrap();
    let mut grads = m.zero_grads().unwrap();
    m.forward(&ids, &mut acts).unwrap();
    m.loss(&mut acts, &targets).unwrap();
    m.backward(&ids, &targets, &mut acts, &mut grads, &mut g, scale)
        .unwrap();
    (grads, count)
}

#[test]
fn parallel_sft_dp2_step_equals_dp1() {
    let mut rng = runtime::Rng::new(5);
    let rows: Vec<Vec<i64>> = (0..4)
        .map(|_| (0..20).map(|_| rng.below(2000) as i64).collect())
        .collect();
    let masked = [0, 9, 3, 0];
    let opt_cfg = OptimConfig {
        lr: 1e-2,
        ..OptimConfig::default()
    };
    let step = |m: &mut Llama, g: &model::LlamaParams| {
        let mut opt = AdamW::new(m, opt_cfg).unwrap();
        opt.step(m, g).unwrap();
    };
    let mut one = Llama::load(&fixture()).expect("load the tiny-llama fixture");
    let (_, total) = sft_grads(&one, &rows, &masked, 1.0);
    let (g, _) = sft_grads(&one, &rows, &masked, 1.0 / total as f32);
    step(&mut one, &g);
    let want = weights(&one);
    let got: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let hs: Vec<_> = ThreadGroup::new(2)
            .unwrap()
            .into_iter()
            .map(|comm| {
                let (rows, masked) = (&rows, &masked);
                s.spawn(move || {
                    let mut dp = DataParallel::new(Box::new(comm));
                    let r = dp.shard(rows.len()).unwrap();
                    let mut m = Llama::load(&fixture()).unwrap();
                    let (_, local) = sft_grads(&m, &rows[r.clone()], &masked[r.clone()], 1.0);
                    // Token-mean over the whole batch: every rank divides by the global count.
                    let global = dp.sum_f64(&[local as f64]).unwrap()[0];
                    let (mut g, _) =
                        sft_grads(&m, &rows[r.clone()], &masked[r], 1.0 / global as f32);
                    dp.sync_grads(&mut g).unwrap();
                    step(&mut m, &g);
                    weights(&m)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(bits(&got[0]), bits(&got[1]));
    for (k, (a, b)) in got[0].iter().zip(&want).enumerate() {
        close_after_adam(a, b, &format!("weights {k}"));
    }
}

/// Parity that fails to produce problems from its `fail_at`-th call on.
struct Failing {
    inner: Parity,
    calls: usize,
    fail_at: Option<usize>,
}

impl Reward for Failing {
    fn score(&self, problem: usize, completion: &[u32]) -> Scored {
        self.inner.score(problem, completion)
    }
}

impl Task for Failing {
    fn next_problems(&mut self, n: usize) -> trainer::train::Result<Vec<Vec<u32>>> {
        self.calls += 1;
        if Some(self.calls) == self.fail_at {
            return Err(trainer::train::TrainError::Invalid(
                "data source broke".into(),
            ));
        }
        self.inner.next_problems(n)
    }
    fn cursor(&self) -> serde_json::Value {
        self.inner.cursor()
    }
    fn restore(&mut self, c: &serde_json::Value) -> trainer::train::Result<()> {
        self.inner.restore(c)
    }
}

#[test]
fn parallel_a_failing_rank_makes_the_others_fail_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let mut cfg = config(
        &init,
        &dir.path().join("o"),
        LossType::Grpo,
        ScaleRewards::Group,
    );
    cfg.steps = 3;
    cfg.save_steps = 0;
    let timeout = std::time::Duration::from_secs(30);
    let t0 = std::time::Instant::now();
    let errs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = ThreadGroup::with_timeout(2, timeout)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                let cfg = cfg.clone();
                s.spawn(move || {
                    let task = Failing {
                        inner: Parity::default(),
                        calls: 0,
                        fail_at: (rank == 1).then_some(2),
                    };
                    let model = Llama::load(&cfg.model).unwrap();
                    let mut t = Trainer::new(cfg, model, task, vec![EOS])
                        .unwrap()
                        .with_dp(DataParallel::new(Box::new(comm)));
                    t.run(false).unwrap_err().to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(errs[1].contains("data source broke"), "{}", errs[1]);
    assert!(
        errs[0].contains("rank(s) [1] left the group"),
        "{}",
        errs[0]
    );
    assert!(t0.elapsed() < timeout, "took {:?}", t0.elapsed());
}
