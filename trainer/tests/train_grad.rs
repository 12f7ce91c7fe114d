//! The GRPO policy gradient on the tiny-llama fixture: equal to an independent computation
//! through the model's own cross-entropy backward, and to finite differences of the loss
//! with temperature, old and reference log-probs.

use std::path::PathBuf;

use model::layers::lm_head::shifted_targets;
use model::{Activations, GradBuffers, Llama, LlamaParams};
use trainer::grpo::{grpo_loss, LossConfig, LossType, TokenLogps};
use trainer::train::policy::{completion_logps, policy_backward, Sequence};

fn fixture() -> PathBuf {
    let base = std::env::var("SWERL_FIXTURES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures").into());
    PathBuf::from(base).join("tiny-llama")
}

fn tokens(seed: u64, n: usize) -> Vec<u32> {
    let mut rng = runtime::Rng::new(seed);
    (0..n).map(|_| rng.below(2000) as u32).collect()
}

struct Batch {
    prompts: Vec<Vec<u32>>,
    completions: Vec<Vec<u32>>,
    width: usize,
    mask: Vec<f32>,
}

impl Batch {
    fn new() -> Self {
        let prompts = vec![tokens(1, 7), tokens(2, 12), tokens(3, 4)];
        let completions = vec![tokens(4, 5), tokens(5, 3), tokens(6, 6)];
        let width = 6;
        let mut mask = vec![0f32; 3 * width];
        for (i, c) in completions.iter().enumerate() {
            mask[i * width..i * width + c.len()].fill(1.0);
        }
        // A masked-out completion token must get no gradient.
        mask[2 * width + 5] = 0.0;
        Batch {
            prompts,
            completions,
            width,
            mask,
        }
    }

    fn seqs(&self) -> Vec<Sequence<'_>> {
        self.prompts
            .iter()
            .zip(&self.completions)
            .map(|(p, c)| Sequence {
                prompt: p,
                completion: c,
            })
            .collect()
    }
}

fn grads_of(
    m: &Llama,
    b: &Batch,
    cfg: &LossConfig,
    adv: &[f64],
    old: Option<&[f32]>,
    reference: Option<&[f32]>,
    temp: f32,
) -> LlamaParams {
    let mut grads = m.zero_grads().unwrap();
    let n = b.prompts.len();
    let mut grad_of = |logp: &[f32]| {
        let x = TokenLogps {
            n_seq: n,
            seq_len: b.width,
            logp,
            old_logp: old,
            ref_logp: reference,
            mask: &b.mask,
        };
        Ok(grpo_loss(cfg, &x, adv).unwrap().grad)
    };
    // Micro-batches of 2 over 3 sequences: the chunked pass must be exact.
    policy_backward(m, &b.seqs(), b.width, temp, 2, &mut grads, &mut grad_of).unwrap();
    grads
}

fn max_abs(t: &runtime::Tensor) -> f32 {
    t.to_f32_vec()
        .unwrap()
        .iter()
        .fold(0f32, |a, x| a.max(x.abs()))
}

#[test]
fn policy_gradient_matches_cross_entropy_backward() {
    let m = Llama::load(&fixture()).unwrap();
    let b = Batch::new();
    let adv = [0.7, -1.2, 0.4];
    let cfg = LossConfig {
        loss_type: LossType::Grpo,
        beta: 0.0,
        epsilon: 0.2,
        epsilon_high: 0.2,
        max_completion_length: 8,
    };
    let ours = grads_of(&m, &b, &cfg, &adv, None, None, 1.0);

    // With ratio 1 and beta 0, grpo's loss is sum_s A_s/(len_s n) * sum_t CE_t: one
    // cross-entropy backward per sequence with that scale, through the model's own path.
    let mut theirs = m.zero_grads().unwrap();
    let n = b.prompts.len();
    for (s, &a) in adv.iter().enumerate() {
        let ids: Vec<u32> = b.prompts[s]
            .iter()
            .chain(&b.completions[s])
            .copied()
            .collect();
        let t = ids.len();
        let p = b.prompts[s].len();
        let keep: Vec<bool> = (0..t)
            .map(|i| i >= p && b.mask[s * b.width + i - p] == 1.0)
            .collect();
        let len = keep.iter().filter(|&&k| k).count() as f64;
        let flat: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
        let targets = shifted_targets(&flat, 1, t, Some(&keep)).unwrap();
        let ids_t = m.ids_tensor(&[ids]).unwrap();
        let mut acts = Activations::new(&m.config, 1, t, false, &m.device).unwrap();
        let mut g = GradBuffers::new(&m.config, 1, t, &m.device).unwrap();
        m.forward(&ids_t, &mut acts).unwrap();
        m.loss(&mut acts, &targets).unwrap();
        let scale = (a / (len * n as f64)) as f32;
        m.backward(&ids_t, &targets, &mut acts, &mut theirs, &mut g, scale)
            .unwrap();
    }
    let names = ours.named(&m.config);
    for ((name, a), b) in names.iter().zip(theirs.tensors()) {
        let (av, bv) = (a.to_f32_vec().unwrap(), b.to_f32_vec().unwrap());
        let scale = max_abs(b).max(1e-12);
        assert!(scale > 1e-9, "{name}: reference gradient is zero");
        let err = av
            .iter()
            .zip(&bv)
            .fold(0f32, |e, (x, y)| e.max((x - y).abs()));
        assert!(
            err <= 1e-4 * scale,
            "{name}: max |diff| {err} vs max |grad| {scale}"
        );
    }
}

fn loss_value(
    m: &Llama,
    b: &Batch,
    cfg: &LossConfig,
    adv: &[f64],
    old: &[f32],
    reference: &[f32],
    temp: f32,
) -> f64 {
    let logp = completion_logps(m, &b.seqs(), b.width, temp, 8).unwrap();
    let x = TokenLogps {
        n_seq: b.prompts.len(),
        seq_len: b.width,
        logp: &logp,
        old_logp: Some(old),
        ref_logp: Some(reference),
        mask: &b.mask,
    };
    grpo_loss(cfg, &x, adv).unwrap().loss
}

#[test]
fn policy_gradient_matches_finite_differences() {
    let mut m = Llama::load(&fixture()).unwrap();
    let b = Batch::new();
    let temp = 0.7;
    let adv = [1.1, -0.6, -0.5];
    let cfg = LossConfig {
        loss_type: LossType::Dapo,
        beta: 0.04,
        epsilon: 0.2,
        epsilon_high: 0.28,
        max_completion_length: 8,
    };
    // Old and reference log-probs near the current ones, so some tokens sit on each side of
    // the clip range and the KL term is non-trivial.
    let cur = completion_logps(&m, &b.seqs(), b.width, temp, 8).unwrap();
    let old: Vec<f32> = cur
        .iter()
        .enumerate()
        .map(|(i, x)| x + 0.1 * ((i % 5) as f32 - 2.0))
        .collect();
    let reference: Vec<f32> = cur
        .iter()
        .enumerate()
        .map(|(i, x)| x - 0.05 * ((i % 3) as f32))
        .collect();
    let grads = grads_of(&m, &b, &cfg, &adv, Some(&old), Some(&reference), temp);

    let eps = 2e-3f32;
    let named: Vec<(String, Vec<f32>)> = grads
        .named(&m.config)
        .into_iter()
        .map(|(n, t)| (n, t.to_f32_vec().unwrap()))
        .collect();
    let mut checked = 0;
    for (pi, (name, g)) in named.iter().enumerate() {
        if !(name.contains("layers.0.self_attn.q_proj")
            || name.contains("layers.1.mlp.down_proj")
            || name == "lm_head.weight"
            || name == "model.embed_tokens.weight")
        {
            continue;
        }
        // The three coordinates with the largest gradient in this tensor.
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|&a, &c| g[c].abs().total_cmp(&g[a].abs()));
        for &i in &idx[..3] {
            let at = |m: &mut Llama, delta: f32| {
                let w = &mut m.params.tensors_mut()[pi];
                w.as_mut_slice::<f32>().unwrap()[i] += delta;
            };
            at(&mut m, eps);
            let up = loss_value(&m, &b, &cfg, &adv, &old, &reference, temp);
            at(&mut m, -2.0 * eps);
            let down = loss_value(&m, &b, &cfg, &adv, &old, &reference, temp);
            at(&mut m, eps);
            let fd = (up - down) / (2.0 * eps as f64);
            let an = g[i] as f64;
            assert!(
                (fd - an).abs() <= 0.03 * an.abs() + 1e-5,
                "{name}[{i}]: finite difference {fd} vs analytic {an}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}
