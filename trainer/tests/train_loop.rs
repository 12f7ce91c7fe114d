//! The GRPO loop on a tiny random Llama and a small verifiable task: exact resume (N steps,
//! stop, resume, N more == 2N uninterrupted, bit for bit) and learning (reward rises).

mod grpo_support;

use std::path::Path;

use grpo_support::{default_config, tiny_model, Parity, EOS};
use model::Llama;
use trainer::config::{GrpoConfig, LrSchedule};
use trainer::grpo::{LossType, ScaleRewards};
use trainer::train::checkpoint::{self, save_hf_folder};
use trainer::train::metrics::read_metrics;
use trainer::train::Trainer;

fn config(model: &Path, out: &Path) -> GrpoConfig {
    let mut c = default_config(model, out);
    c.per_step_problems = 4;
    c.num_generations = 6;
    c.max_completion_length = 4;
    c.max_prompt_length = 16;
    c.learning_rate = 3e-2;
    c.lr_schedule = LrSchedule::Constant;
    c.warmup_steps = 2;
    c.weight_decay = 0.0;
    c.micro_batch = 8;
    c.seed = 7;
    c.scale_rewards = ScaleRewards::Group;
    c
}

fn final_weights(t: &Trainer<Parity>) -> Vec<Vec<u32>> {
    t.learner
        .model
        .params
        .tensors()
        .iter()
        .map(|x| {
            x.to_f32_vec()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

#[test]
fn resume_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init");
    save_hf_folder(&tiny_model(3), &init, None).unwrap();
    let mut cfg = config(&init, &dir.path().join("a"));
    // Exercise every stateful path: reference model, old log-probs (μ = 2), clipping, warmup.
    cfg.beta = 0.04;
    cfg.num_iterations = 2;
    cfg.loss_type = LossType::Bnpo;
    cfg.epsilon_high = Some(0.28);
    cfg.max_grad_norm = 0.5;
    cfg.steps = 6;
    cfg.save_steps = 3;
    let mut a = Trainer::new(
        cfg.clone(),
        Llama::load(&init).unwrap(),
        Parity::default(),
        vec![EOS],
    )
    .unwrap();
    a.run(false).unwrap();

    let mut b_cfg = cfg.clone();
    b_cfg.output_dir = dir.path().join("b");
    b_cfg.steps = 3;
    let mut b = Trainer::new(
        b_cfg.clone(),
        Llama::load(&init).unwrap(),
        Parity::default(),
        vec![EOS],
    )
    .unwrap();
    b.run(false).unwrap();
    drop(b);
    let ckpt = checkpoint::latest(&b_cfg.output_dir)
        .unwrap()
        .expect("a checkpoint");
    assert!(ckpt.ends_with("checkpoint-000003"), "{}", ckpt.display());
    b_cfg.steps = 6;
    let mut b = Trainer::resume(b_cfg.clone(), &ckpt, Parity::default(), vec![EOS]).unwrap();
    assert_eq!(b.step, 3);
    b.run(false).unwrap();

    assert_eq!(
        final_weights(&a),
        final_weights(&b),
        "weights differ after resume"
    );
    assert_eq!(a.learner.opt.step, 12);
    assert_eq!(a.rng, b.rng);
    let strip = |p: &Path| {
        read_metrics(&p.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .map(|mut m| {
                m.time_s = Default::default();
                m.generation_tokens_per_s = 0.0;
                m.training_tokens_per_s = 0.0;
                m
            })
            .collect::<Vec<_>>()
    };
    let (ma, mb) = (strip(&cfg.output_dir), strip(&b_cfg.output_dir));
    assert_eq!(ma.len(), 6);
    assert_eq!(ma, mb);
    assert!(ma.iter().any(|m| m.kl > 0.0), "the KL term never moved");
    // The saved model folder loads back to the same weights.
    let last = Llama::load(&checkpoint::checkpoint_dir(&cfg.output_dir, 6)).unwrap();
    let w: Vec<Vec<u32>> = last
        .params
        .tensors()
        .iter()
        .map(|x| {
            x.to_f32_vec()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect();
    assert_eq!(w, final_weights(&a));
    // A different config is refused.
    let mut other = b_cfg.clone();
    other.learning_rate = 1.0;
    assert!(Trainer::resume(other, &ckpt, Parity::default(), vec![EOS]).is_err());
}

#[test]
fn grpo_learns_a_small_verifiable_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Path::new("unused-model"), &dir.path().join("run"));
    cfg.steps = 40;
    cfg.save_steps = 0;
    cfg.per_step_problems = 8;
    cfg.num_generations = 8;
    let mut t = Trainer::new(cfg, tiny_model(11), Parity::default(), vec![EOS]).unwrap();
    let m = t.run(false).unwrap();
    let mean = |s: &[trainer::train::metrics::StepMetrics]| {
        s.iter().map(|x| x.reward_mean).sum::<f64>() / s.len() as f64
    };
    let (first, last) = (mean(&m[..5]), mean(&m[m.len() - 5..]));
    eprintln!("reward: first 5 steps {first:.3}, last 5 steps {last:.3}");
    assert!(
        last > first + 0.3,
        "reward did not rise: first {first:.3}, last {last:.3}"
    );
}
