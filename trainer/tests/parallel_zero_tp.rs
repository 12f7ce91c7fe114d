//! Tensor parallelism with sharded state: a TP checkpoint streams one tensor at a time and is
//! byte-identical to saving the gathered model and AdamW state; ZeRO-1 under `tp × dp` (each
//! TP rank's moments sharded over its DP group) gives the replicated-state run's weights (bit
//! for bit without clipping, within rounding with it, as `parallel_zero.rs` states for DP
//! alone), writes the same checkpoint, resumes exactly with or without ZeRO-1, and runs from
//! the CLI.

mod grpo_support;

use std::path::Path;

use grpo_support::{init_model, parallel_config, param_bits, zero_config, Parity, EOS};
use model::optim::AdamW;
use model::tp::{gather, Replicas};
use model::Llama;
use trainer::config::GrpoConfig;
use trainer::train::checkpoint::{checkpoint_dir, save_trainer, OPTIMIZER_FILE};
use trainer::train::metrics::StepMetrics;
use trainer::train::tp_run::{run_mesh, TpTrainer};
use trainer::train::Task;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// After a step on a `tp × 2` mesh (TP=4 replicates the 2 KV heads), the streamed
/// checkpoint equals, file for file and byte for byte, the gathered weights and moments
/// written by the single-process checkpoint writer.
#[test]
fn parallel_tp_streamed_checkpoint_equals_the_gathered_one_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    std::fs::write(init.join("tokenizer.json"), b"{}").unwrap();
    for tp in [2, 4] {
        let mut cfg = parallel_config(&init, &dir.path().join(format!("tp{tp}")));
        cfg.steps = 1;
        cfg.save_steps = 0;
        let streamed = dir.path().join(format!("streamed{tp}"));
        run_mesh(tp, 2, |_, comms| {
            let mut t = TpTrainer::new(cfg.clone(), Parity::default(), vec![EOS], comms)?;
            t.run(false)?;
            if t.comms.dp_rank() != 0 {
                return Ok(());
            }
            let main = t.comms.is_main();
            if main {
                std::fs::rename(checkpoint_dir(&cfg.output_dir, 1), &streamed).unwrap();
            }
            let plan = &t.learner.model.plan;
            let tpc = t.comms.tp.as_mut();
            let mut full = |p: &model::LlamaParams| gather(plan, tpc, p, Replicas::Identical);
            let params = full(&t.learner.model.local.params)?;
            let opt: AdamW = t.learner.opt.map_state(&mut full)?;
            if main {
                let m = Llama::from_params(plan.full.clone(), params)?;
                let cursor = t.task.cursor();
                save_trainer(&cfg, t.step, &m, &opt, t.rng.state(), cursor, Some(&init))?;
            }
            Ok(())
        })
        .unwrap();
        let gathered = files(&checkpoint_dir(&cfg.output_dir, 1));
        assert_eq!(
            gathered.len(),
            5,
            "config, weights, tokenizer, moments, state"
        );
        assert_eq!(files(&streamed), gathered, "tp={tp}");
    }
}

fn with_zero(cfg: &GrpoConfig, out: &Path) -> GrpoConfig {
    let mut c = cfg.clone();
    c.zero1 = true;
    c.output_dir = out.to_path_buf();
    c
}

/// Every rank's gathered full weights (as bits) and metrics after a `tp × dp` run to `steps`
/// (continued from `resume`), with DP buckets of `bucket_bytes`.
fn run(
    cfg: &GrpoConfig,
    tp: usize,
    dp: usize,
    steps: usize,
    resume: Option<&Path>,
    bucket_bytes: usize,
) -> Vec<(Vec<Vec<u32>>, Vec<StepMetrics>)> {
    let mut cfg = cfg.clone();
    cfg.steps = steps;
    run_mesh(tp, dp, |_, mut comms| {
        if let Some(d) = comms.dp.as_mut() {
            d.bucket_bytes = bucket_bytes;
        }
        let mut t = match resume {
            Some(dir) => TpTrainer::resume(cfg.clone(), dir, Parity::default(), vec![EOS], comms)?,
            None => TpTrainer::new(cfg.clone(), Parity::default(), vec![EOS], comms)?,
        };
        let m = t.run(false)?;
        let plan = &t.learner.model.plan;
        let local = &t.learner.model.local.params;
        let full = gather(plan, t.comms.tp.as_mut(), local, Replicas::Identical)?;
        Ok((param_bits(&full), m))
    })
    .unwrap()
}

#[test]
fn parallel_zero1_tp_dp_without_clipping_equals_replicated_state_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    // TP=4 replicates the 2 KV heads: their summed gradients enter the DP reduce-scatter.
    for (tp, dp) in [(2, 2), (4, 2), (2, 3)] {
        let base = zero_config(&init, &dir.path().join(format!("plain{tp}{dp}")), 0.0);
        let zero = with_zero(&base, &dir.path().join(format!("zero{tp}{dp}")));
        let want = run(&base, tp, dp, 2, None, 1 << 20);
        let got = run(&zero, tp, dp, 2, None, 4096);
        for (r, ((g, gm), (w, wm))) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "tp={tp} dp={dp} rank {r}: weights differ");
            for (a, b) in gm.iter().zip(wm) {
                assert_eq!(a.reward_mean, b.reward_mean, "same rollouts");
                let d = (a.grad_norm - b.grad_norm).abs() / b.grad_norm;
                assert!(d < 1e-6, "grad norm {} vs {}", a.grad_norm, b.grad_norm);
                assert!(
                    a.optimizer_state_bytes < b.optimizer_state_bytes,
                    "tp={tp} dp={dp}: {} B sharded vs {} B",
                    a.optimizer_state_bytes,
                    b.optimizer_state_bytes
                );
            }
        }
    }
}

/// With clipping the norm is summed in f64 over each DP rank's shard, then over DP and TP
/// ranks, while the replicated path sums f32 blocks and all-reduces an f32: the clip scales
/// differ by a few ulps, and the weights by well under 1e-6 relative.
#[test]
fn parallel_zero1_tp_dp_with_clipping_matches_replicated_state_within_rounding() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    for tp in [2, 4] {
        let base = zero_config(&init, &dir.path().join(format!("plain{tp}")), 0.05);
        let zero = with_zero(&base, &dir.path().join(format!("zero{tp}")));
        let want = run(&base, tp, 2, 2, None, 1 << 20);
        let got = run(&zero, tp, 2, 2, None, 1 << 20);
        assert!(
            want[0].1.iter().all(|m| m.grad_norm > 0.05),
            "clipping was not exercised"
        );
        assert!(
            got.iter().all(|g| g.0 == got[0].0),
            "ZeRO-1 replicas diverged"
        );
        for (k, (g, w)) in got[0].0.iter().zip(&want[0].0).enumerate() {
            let (mut num, mut den) = (0f64, 0f64);
            for (a, b) in g.iter().zip(w) {
                let (a, b) = (f32::from_bits(*a) as f64, f32::from_bits(*b) as f64);
                num += (a - b).powi(2);
                den += b.powi(2);
            }
            let rel = (num / den.max(1e-300)).sqrt();
            assert!(
                rel < 1e-6,
                "tp={tp} tensor {k}: relative difference {rel:e}"
            );
        }
        for (a, b) in got[0].1.iter().zip(&want[0].1) {
            assert!((a.grad_norm - b.grad_norm).abs() <= 1e-5 * b.grad_norm);
        }
    }
}

#[test]
fn parallel_zero1_tp_dp_checkpoint_resumes_exactly_with_or_without_zero1() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_model(dir.path());
    let mut base = zero_config(&init, &dir.path().join("plain"), 0.0);
    base.save_steps = 1;
    let mut zero = with_zero(&base, &dir.path().join("zero"));
    zero.save_steps = 1;
    let straight = run(&base, 2, 2, 2, None, 1 << 20);
    let zero_run = run(&zero, 2, 2, 2, None, 8192);
    assert_eq!(zero_run[0].0, straight[0].0);
    // The sharded moments are gathered into the replicated layout: the same checkpoint, byte
    // for byte, as the run that never sharded (trainer_state.json names its own config).
    for step in [1, 2] {
        for f in ["model.safetensors", OPTIMIZER_FILE] {
            let read = |out: &Path| std::fs::read(checkpoint_dir(out, step).join(f)).unwrap();
            assert!(
                read(&zero.output_dir) == read(&base.output_dir),
                "step {step} {f}"
            );
        }
    }
    let ckpt = checkpoint_dir(&zero.output_dir, 1);
    for resume_zero in [true, false] {
        let mut c = zero.clone();
        c.zero1 = resume_zero;
        c.output_dir = dir.path().join(format!("resumed-{resume_zero}"));
        let resumed = run(&c, 2, 2, 2, Some(&ckpt), 1 << 20);
        for (r, (g, w)) in resumed.iter().zip(&straight).enumerate() {
            assert_eq!(
                g.0, w.0,
                "resume with zero1={resume_zero}, rank {r}: 1 + 1 steps differ from 2"
            );
        }
        assert_eq!(resumed[0].1.len(), 1);
    }
}

mod cli_support;

#[test]
fn parallel_cli_train_tp2_dp2_zero1_matches_without_zero1() {
    use cli_support::{metrics, mined_dataset, stderr, swerl, write_config};
    let dir = tempfile::tempdir().unwrap();
    let data = mined_dataset(dir.path());
    let cfg = write_config(dir.path(), &data);
    let train = |out: &Path, extra: &[&str]| {
        let o = swerl()
            .args(["train", "--quiet", "--tp", "2", "--dp", "2"])
            .arg("--config")
            .arg(&cfg)
            .arg("--output_dir")
            .arg(out)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
    };
    let (plain, zero) = (dir.path().join("plain"), dir.path().join("zero"));
    train(&plain, &[]);
    train(&zero, &["--zero1", "true"]);
    let (a, b) = (metrics(&plain), metrics(&zero));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["reward_mean"], y["reward_mean"]);
        let (u, v) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        assert!((u - v).abs() <= 1e-5 * u.abs().max(1e-6), "loss {v} vs {u}");
        let (s, t) = (
            x["optimizer_state_bytes"].as_u64().unwrap(),
            y["optimizer_state_bytes"].as_u64().unwrap(),
        );
        assert!(
            t < s,
            "zero1 holds {t} B of optimizer state, replicated {s} B"
        );
    }
    let load = |d: &Path| {
        let step = metrics(d).len();
        Llama::load(&checkpoint_dir(d, step)).unwrap()
    };
    let (p, z) = (load(&plain), load(&zero));
    for (k, (g, w)) in z
        .params
        .tensors()
        .iter()
        .zip(p.params.tensors())
        .enumerate()
    {
        let (g, w) = (g.to_f32_vec().unwrap(), w.to_f32_vec().unwrap());
        let num: f64 = g
            .iter()
            .zip(&w)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = w.iter().map(|b| (*b as f64).powi(2)).sum();
        assert!((num / den).sqrt() < 1e-6, "checkpoint tensor {k}");
    }
}
