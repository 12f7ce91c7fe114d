//! ZeRO-1 (`zero1 = true`): data-parallel GRPO with the AdamW state sharded across ranks
//! gives the updated weights of the replicated-state run (bit for bit without clipping, as the
//! reduce-scatter sums each element in the same rank order as the all-reduce; with clipping the
//! global norm is summed in another order, see `parallel_zero1_with_clipping_...`), checkpoints the
//! same optimizer file, resumes exactly with or without ZeRO-1, and holds ~1/dp of the state
//! per rank. Also: a TP-only run's metrics report `dp_world` 1.

mod grpo_support;

use std::path::Path;

use grpo_support::{init_model, param_bits, zero_config, Parity, EOS};
use model::optim::{AdamW, OptimConfig};
use model::{Llama, LlamaConfig, LlamaParams};
use runtime::comm::ThreadGroup;
use runtime::DType;
use trainer::config::GrpoConfig;
use trainer::dp::DataParallel;
use trainer::train::checkpoint::{checkpoint_dir, OPTIMIZER_FILE};
use trainer::train::metrics::{read_metrics, StepMetrics};
use trainer::train::tp_run::{run_mesh, TpTrainer};
use trainer::train::zero1::Zero1;
use trainer::train::Trainer;

struct RankOut {
    weights: Vec<Vec<u32>>,
    metrics: Vec<StepMetrics>,
}

/// Runs (or continues from `resume`) `world` in-process DP ranks to `steps`, with gradient
/// buckets of `bucket_bytes` (small ones make ZeRO-1 issue several collectives per step).
fn run_dp(
    cfg: &GrpoConfig,
    world: usize,
    steps: usize,
    resume: Option<&Path>,
    bucket_bytes: usize,
) -> Vec<RankOut> {
    let mut cfg = cfg.clone();
    cfg.steps = steps;
    let cfg = &cfg;
    std::thread::scope(|s| {
        let hs: Vec<_> = ThreadGroup::new(world)
            .unwrap()
            .into_iter()
            .map(|comm| {
                s.spawn(move || {
                    let t = match resume {
                        Some(dir) => {
                            Trainer::resume(cfg.clone(), dir, Parity::default(), vec![EOS])
                        }
                        None => {
                            let model = Llama::load(&cfg.model).unwrap();
                            Trainer::new(cfg.clone(), model, Parity::default(), vec![EOS])
                        }
                    };
                    let mut dp = DataParallel::new(Box::new(comm));
                    dp.bucket_bytes = bucket_bytes;
                    let mut t = t.unwrap().with_dp(dp);
                    let metrics = t.run(false).unwrap();
                    RankOut {
                        weights: param_bits(&t.learner.model.params),
                        metrics,
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `cfg` with ZeRO-1 switched on as the CLI does it (`--zero1 true`), writing to `out`.
fn with_zero(cfg: &GrpoConfig, out: &Path) -> GrpoConfig {
    let mut t = toml::Table::try_from(cfg).unwrap();
    let args = ["--zero1".to_string(), "true".to_string()];
    trainer::config::apply_overrides(&mut t, &args).unwrap();
    let mut c: GrpoConfig = trainer::config::from_table(t).unwrap();
    assert!(c.zero1 && !cfg.zero1);
    c.output_dir = out.to_path_buf();
    c
}

#[test]
fn parallel_zero1_without_clipping_equals_replicated_state_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    for world in [2, 3] {
        let base = zero_config(&init, &dir.path().join(format!("plain{world}")), 0.0);
        let zero = with_zero(&base, &dir.path().join(format!("zero{world}")));
        let want = run_dp(&base, world, 2, None, 1 << 20);
        let got = run_dp(&zero, world, 2, None, 4096);
        let start = param_bits(&Llama::load(&init).unwrap().params);
        assert_ne!(want[0].weights, start, "the steps did not move the weights");
        for (r, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.weights, w.weights, "dp={world} rank {r}: weights differ");
            for (a, b) in g.metrics.iter().zip(&w.metrics) {
                assert_eq!(a.reward_mean, b.reward_mean, "same rollouts");
                // Reported only: the replicated path sums squares in f32 blocks of 256.
                let d = (a.grad_norm - b.grad_norm).abs() / b.grad_norm;
                assert!(d < 1e-6, "grad norm {} vs {}", a.grad_norm, b.grad_norm);
                assert!(a.comm_collectives > b.comm_collectives, "small buckets");
            }
        }
    }
}

/// With clipping the scale `max / norm` uses a norm summed in f64 over this rank's shard and
/// then over ranks, while the replicated path (`ops::global_l2_norm`) accumulates squares in
/// f32 blocks of 256 per tensor: the norms differ by ~1e-8 relative (bound 1e-6), so the clip
/// scale does by a few f32 ulps. AdamW's update is nearly invariant to a common gradient
/// scale, so after two steps (four optimizer steps) the weights agree to 1e-6 relative per
/// tensor and, per element, to 1e-7 (1e-5 of the learning rate) or two f32 ulps.
#[test]
fn parallel_zero1_with_clipping_matches_replicated_state_within_rounding() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let base = zero_config(&init, &dir.path().join("plain"), 0.05);
    let zero = with_zero(&base, &dir.path().join("zero"));
    let want = run_dp(&base, 2, 2, None, 1 << 20);
    let got = run_dp(&zero, 2, 2, None, 1 << 20);
    assert!(
        want[0].metrics.iter().all(|m| m.grad_norm > 0.05),
        "clipping was not exercised"
    );
    assert_eq!(got[0].weights, got[1].weights, "ZeRO-1 replicas diverged");
    for (k, (g, w)) in got[0].weights.iter().zip(&want[0].weights).enumerate() {
        let (mut num, mut den, mut worst) = (0f64, 0f64, 0f32);
        for (a, b) in g.iter().zip(w) {
            let (a, b) = (f32::from_bits(*a), f32::from_bits(*b));
            num += ((a - b) as f64).powi(2);
            den += (b as f64).powi(2);
            // In units of the larger of 1e-7 and two f32 ulps of the weight.
            worst = worst.max((a - b).abs() / 1e-7f32.max(2.0 * f32::EPSILON * b.abs()));
        }
        let rel = (num / den.max(1e-300)).sqrt();
        // Each AdamW update moves an element by about lr = 1e-2; the clip-scale rounding
        // may change it by 1e-5 of that, or the last bit of a weight near 1.
        assert!(
            rel < 1e-6 && worst <= 1.0,
            "tensor {k}: relative difference {rel:e}, largest element difference {worst} x bound"
        );
    }
    for (a, b) in got[0].metrics.iter().zip(&want[0].metrics) {
        assert!((a.grad_norm - b.grad_norm).abs() <= 1e-6 * b.grad_norm);
    }
}

#[test]
fn parallel_zero1_checkpoint_resumes_exactly_with_or_without_zero1() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let base = zero_config(&init, &dir.path().join("plain"), 0.0);
    let mut zero = with_zero(&base, &dir.path().join("zero"));
    zero.save_steps = 1;
    let straight = run_dp(&base, 2, 2, None, 1 << 20);
    let zero_run = run_dp(&zero, 2, 2, None, 8192);
    assert_eq!(zero_run[0].weights, straight[0].weights);
    // The sharded moments are gathered into the replicated layout: the same file, byte for
    // byte, as the run that never sharded.
    let opt_bytes =
        |out: &Path| std::fs::read(checkpoint_dir(out, 2).join(OPTIMIZER_FILE)).unwrap();
    assert!(opt_bytes(&zero.output_dir) == opt_bytes(&base.output_dir));

    let ckpt = checkpoint_dir(&zero.output_dir, 1);
    for resume_zero in [true, false] {
        let mut c = zero.clone();
        c.zero1 = resume_zero;
        c.output_dir = dir.path().join(format!("resumed-{resume_zero}"));
        let resumed = run_dp(&c, 2, 2, Some(&ckpt), 1 << 20);
        for (r, (g, w)) in resumed.iter().zip(&straight).enumerate() {
            assert_eq!(
                g.weights, w.weights,
                "resume with zero1={resume_zero}, rank {r}: 1 + 1 steps differ from 2"
            );
        }
        assert_eq!(resumed[0].metrics.len(), 1);
    }
}

#[test]
fn parallel_zero1_holds_a_world_share_of_the_optimizer_state() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let base = zero_config(&init, &dir.path().join("plain"), 1.0);
    let n: usize = Llama::load(&init)
        .unwrap()
        .params
        .tensors()
        .iter()
        .map(|t| t.numel())
        .sum();
    assert_ne!(n % 3, 0, "{n} parameters: DP=3 shards should be uneven");
    let full = 2 * 4 * n; // m and v in f32 (the model is f32: no master copy)
    let plain = run_dp(&base, 2, 1, None, 1 << 20);
    assert_eq!(plain[0].metrics[0].optimizer_state_bytes, full);
    for world in [2, 3] {
        let zero = with_zero(&base, &dir.path().join(format!("zero{world}")));
        let ranks = run_dp(&zero, world, 1, None, 1 << 20);
        let per: Vec<usize> = ranks
            .iter()
            .map(|r| r.metrics[0].optimizer_state_bytes)
            .collect();
        assert_eq!(
            per.iter().sum::<usize>(),
            full,
            "dp={world}: shards {per:?}"
        );
        let share = 2 * 4 * n.div_ceil(world);
        assert!(
            per.iter().all(|&b| b <= share),
            "dp={world}: {per:?} exceeds {share} bytes per rank"
        );
        let written = read_metrics(&zero.output_dir.join("metrics.jsonl")).unwrap();
        assert_eq!(written[0].optimizer_state_bytes, per[0]);
    }
}

#[test]
fn parallel_tp_only_run_reports_dp_world_one() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let mut cfg = zero_config(&init, &dir.path().join("tp2"), 1.0);
    cfg.steps = 1;
    run_mesh(2, 1, |_, comms| {
        let mut t = TpTrainer::new(cfg.clone(), Parity::default(), vec![EOS], comms)?;
        t.run(false)
    })
    .unwrap();
    let lines = read_metrics(&cfg.output_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].dp_world, 1,
        "a TP-only run is one data-parallel rank"
    );
    // Lines written before the field existed were single-process runs too.
    let mut old = serde_json::to_value(&lines[0]).unwrap();
    old.as_object_mut().unwrap().remove("dp_world");
    let back: StepMetrics = serde_json::from_value(old).unwrap();
    assert_eq!(back.dp_world, 1);
}

/// A BF16 model keeps f32 master weights: ZeRO-1 shards them with the moments. Three ranks'
/// gradients stepped through `Zero1` give, bit for bit, the BF16 weights and the (gathered)
/// moments and master weights of one `AdamW` stepping their rank-order sum.
#[test]
fn parallel_zero1_shards_master_weights_and_matches_adamw_on_the_summed_gradient() {
    let c = LlamaConfig::new(32, 2, 4, 2, 64, 16, 64, false).unwrap();
    let oc = OptimConfig {
        lr: 1e-2,
        weight_decay: 0.1,
        max_grad_norm: None,
        ..OptimConfig::default()
    };
    let world = 3;
    let grad = |step: u64, rank: u64| {
        LlamaParams::random(&c, DType::F32, 0.1, 100 + 10 * step + rank).unwrap()
    };
    let mut model = Llama::random(c.clone(), DType::BF16, 3).unwrap();
    let mut opt = AdamW::new(&model, oc).unwrap();
    assert!(opt.master.is_some());
    for step in 0..2 {
        let mut sum = grad(step, 0);
        for r in 1..world {
            let g = grad(step, r as u64);
            for (d, s) in sum.tensors_mut().into_iter().zip(g.tensors()) {
                let s = s.as_slice::<f32>().unwrap();
                let d = d.as_mut_slice::<f32>().unwrap();
                d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
            }
        }
        opt.step_with_lr(&mut model, &sum, 1e-2).unwrap();
    }
    let want = (param_bits(&model.params), opt);
    let full = 4 * 3 * want.0.iter().map(Vec::len).sum::<usize>();
    let ranks: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = ThreadGroup::new(world)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                let (c, grad) = (c.clone(), &grad);
                s.spawn(move || {
                    let mut model = Llama::random(c, DType::BF16, 3).unwrap();
                    let mut opt = AdamW::new(&model, oc).unwrap();
                    let mut z = Zero1::new(&mut opt, &model, rank, world).unwrap();
                    let mut dp = DataParallel::new(Box::new(comm));
                    dp.bucket_bytes = 1000;
                    for step in 0..2 {
                        let g = grad(step, rank as u64);
                        z.step(&mut dp, &mut opt, &mut model, &g, 1e-2).unwrap();
                    }
                    let state = z.gather_state(&mut dp, &opt, &model).unwrap();
                    (param_bits(&model.params), state, z.state_bytes())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (want_w, want_opt) = want;
    let mut bytes = 0;
    for (r, (w, state, b)) in ranks.iter().enumerate() {
        assert_eq!(w, &want_w, "rank {r}: BF16 weights");
        assert_eq!(param_bits(&state.m), param_bits(&want_opt.m), "rank {r}: m");
        assert_eq!(param_bits(&state.v), param_bits(&want_opt.v), "rank {r}: v");
        let (got_master, want_master) = (state.master.as_ref(), want_opt.master.as_ref());
        assert_eq!(
            param_bits(got_master.unwrap()),
            param_bits(want_master.unwrap()),
            "rank {r}: master weights"
        );
        assert_eq!(state.step, 2);
        assert!(*b <= full.div_ceil(world) + 12, "rank {r}: {b} bytes");
        bytes += b;
    }
    assert_eq!(
        bytes, full,
        "moments + master weights, split without overlap"
    );
}
