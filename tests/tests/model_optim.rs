//! AdamW, clipping, LR schedule and gradient accumulation over the model's parameters.

mod model_support;

use model::layers::lm_head::shifted_targets;
use model::optim::{AdamW, OptimConfig, Schedule};
use model::{Activations, GradBuffers, Llama, LlamaParams};
use model_support::*;
use runtime::DType;

/// Accumulates into `g` the gradient of `scale * sum of token losses` over `rows`; returns
/// (summed loss, token count).
fn accumulate(
    m: &Llama,
    rows: &[Vec<u32>],
    g: &mut LlamaParams,
    scale: Option<f32>,
) -> (f64, usize) {
    let ids = m.ids_tensor(rows).unwrap();
    let (b, t) = (ids.dim(0), ids.dim(1));
    let targets = shifted_targets(&ids.to_vec::<i64>().unwrap(), b, t, None).unwrap();
    let mut acts = Activations::new(&m.config, b, t, false, &m.device).unwrap();
    let mut bufs = GradBuffers::new(&m.config, b, t, &m.device).unwrap();
    m.forward(&ids, &mut acts).unwrap();
    let loss = m.loss(&mut acts, &targets).unwrap();
    let s = scale.unwrap_or(1.0 / loss.count as f32);
    m.backward(&ids, &targets, &mut acts, g, &mut bufs, s)
        .unwrap();
    (loss.mean * loss.count as f64, loss.count)
}

#[test]
fn accumulated_micro_batches_equal_one_batch() {
    let m = Llama::load(&fixture_dir()).unwrap();
    let rows = id_rows(&reference()["input_ids"]);
    let mut whole = m.zero_grads().unwrap();
    let (_, count) = accumulate(&m, &rows, &mut whole, None);
    let mut acc = m.zero_grads().unwrap();
    for r in &rows {
        accumulate(
            &m,
            std::slice::from_ref(r),
            &mut acc,
            Some(1.0 / count as f32),
        );
    }
    for ((name, a), b) in whole.named(&m.config).into_iter().zip(acc.tensors()) {
        let (rel, _) = rel_and_abs(b, a);
        assert!(rel <= 1e-5, "{name}: accumulated gradient differs by {rel}");
    }
}

#[test]
fn lr_schedule_warms_up_then_decays() {
    let c = OptimConfig {
        lr: 1.0,
        warmup_steps: 4,
        schedule: Schedule::Cosine {
            total_steps: 14,
            min_ratio: 0.0,
        },
        ..Default::default()
    };
    assert_eq!(c.lr_at(0), 0.0);
    assert_eq!(c.lr_at(2), 0.5);
    assert_eq!(c.lr_at(4), 1.0);
    assert!((c.lr_at(9) - 0.5).abs() < 1e-6);
    assert!(c.lr_at(14).abs() < 1e-6);
    assert!(c.lr_at(100).abs() < 1e-6);
    let k = OptimConfig {
        lr: 2.0,
        warmup_steps: 2,
        ..Default::default()
    };
    assert_eq!((k.lr_at(1), k.lr_at(2), k.lr_at(50)), (1.0, 2.0, 2.0));
}

#[test]
fn first_adamw_step_moves_each_weight_by_lr_against_its_gradient_sign() {
    let mut m = Llama::load(&fixture_dir()).unwrap();
    let rows = id_rows(&reference()["input_ids"]);
    let mut g = m.zero_grads().unwrap();
    accumulate(&m, &rows, &mut g, None);
    let before = m.params.copy().unwrap();
    let lr = 1e-3;
    let mut opt = AdamW::new(
        &m,
        OptimConfig {
            lr,
            max_grad_norm: None,
            ..Default::default()
        },
    )
    .unwrap();
    let st = opt.step(&mut m, &g).unwrap();
    assert_eq!(st.clip_scale, 1.0);
    let want_norm = runtime::ops::global_l2_norm(&g.tensors()).unwrap();
    assert!((st.grad_norm - want_norm).abs() < 1e-9);
    // Bias-corrected first step: delta = -lr * g / (|g| + eps) ~ -lr * sign(g).
    let (w0, w1, gr) = (
        &before.layers[0].wq,
        &m.params.layers[0].wq,
        &g.layers[0].wq,
    );
    let (w0, w1, gr) = (
        w0.to_f32_vec().unwrap(),
        w1.to_f32_vec().unwrap(),
        gr.to_f32_vec().unwrap(),
    );
    let mut checked = 0;
    for i in 0..w0.len() {
        if gr[i].abs() > 1e-5 {
            let d = w1[i] - w0[i];
            assert!(
                (d + lr * gr[i].signum()).abs() < 2e-5,
                "element {i}: moved {d}, grad {}",
                gr[i]
            );
            checked += 1;
        }
    }
    assert!(checked > w0.len() / 2);
}

#[test]
fn clipping_scales_the_global_norm() {
    let mut m = Llama::load(&fixture_dir()).unwrap();
    let rows = id_rows(&reference()["input_ids"]);
    let mut g = m.zero_grads().unwrap();
    accumulate(&m, &rows, &mut g, None);
    let norm = runtime::ops::global_l2_norm(&g.tensors()).unwrap();
    let mut opt = AdamW::new(
        &m,
        OptimConfig {
            max_grad_norm: Some((norm / 4.0) as f32),
            ..Default::default()
        },
    )
    .unwrap();
    let st = opt.step(&mut m, &g).unwrap();
    assert!(
        (st.clip_scale as f64 - 0.25).abs() < 1e-4,
        "clip scale {}",
        st.clip_scale
    );
    // m after one step = (1 - beta1) * clipped grad.
    let m0 = opt.m.layers[1].w_up.to_f32_vec().unwrap();
    let g0 = g.layers[1].w_up.to_f32_vec().unwrap();
    for (a, b) in m0.iter().zip(&g0) {
        assert!((a - 0.1 * 0.25 * b).abs() <= 1e-6 * (1.0 + b.abs()));
    }
}

#[test]
fn training_steps_lower_the_loss_and_bf16_copy_tracks_master() {
    let rows = id_rows(&reference()["input_ids"]);
    for dtype in [DType::F32, DType::BF16] {
        let mut m = Llama::load_as(&fixture_dir(), dtype).unwrap();
        let cfg = OptimConfig {
            lr: 3e-3,
            warmup_steps: 2,
            schedule: Schedule::Cosine {
                total_steps: 15,
                min_ratio: 0.1,
            },
            weight_decay: 0.01,
            ..Default::default()
        };
        let mut opt = AdamW::new(&m, cfg).unwrap();
        assert_eq!(opt.master.is_some(), dtype != DType::F32);
        let mut losses = vec![];
        for _ in 0..15 {
            let mut g = m.zero_grads().unwrap();
            let (sum, n) = accumulate(&m, &rows, &mut g, None);
            losses.push(sum / n as f64);
            opt.step(&mut m, &g).unwrap();
        }
        assert!(losses[14] < 0.7 * losses[0], "{dtype:?}: losses {losses:?}");
        if let Some(master) = &opt.master {
            let want: Vec<f32> = master
                .embed
                .cast(DType::BF16)
                .unwrap()
                .to_f32_vec()
                .unwrap();
            assert_eq!(m.params.embed.to_f32_vec().unwrap(), want);
            assert_eq!(m.params.embed.dtype(), DType::BF16);
        }
    }
}

/// A model that shares no storage with `m`.
fn clone_model(m: &Llama) -> Llama {
    let mut p = m.params.clone();
    for t in p.tensors_mut() {
        *t = t.copy().unwrap();
    }
    Llama::from_params(m.config.clone(), p).unwrap()
}

#[test]
fn saved_state_resumes_bit_exactly_and_mismatches_are_errors() {
    let rows = id_rows(&reference()["input_ids"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = OptimConfig {
        lr: 3e-3,
        weight_decay: 0.01,
        ..Default::default()
    };
    let step = |m: &mut Llama, opt: &mut AdamW| {
        let mut g = m.zero_grads().unwrap();
        accumulate(m, &rows, &mut g, None);
        opt.step(m, &g).unwrap();
    };
    for dtype in [DType::F32, DType::BF16] {
        let path = dir.path().join(format!("{dtype:?}.safetensors"));
        let mut a = Llama::load_as(&fixture_dir(), dtype).unwrap();
        let mut opt_a = AdamW::new(&a, cfg).unwrap();
        step(&mut a, &mut opt_a);
        opt_a.save_state(&a.config, &path).unwrap();
        let mut b = clone_model(&a);
        let mut opt_b = AdamW::new(&b, cfg).unwrap();
        opt_b.load_state(&b, &path, opt_a.step).unwrap();
        for _ in 0..2 {
            step(&mut a, &mut opt_a);
            step(&mut b, &mut opt_b);
        }
        for (x, y) in a.params.tensors().into_iter().zip(b.params.tensors()) {
            let bits = |t: &runtime::Tensor| -> Vec<u32> {
                t.to_f32_vec()
                    .unwrap()
                    .into_iter()
                    .map(f32::to_bits)
                    .collect()
            };
            assert_eq!(bits(x), bits(y), "{dtype:?}: resumed weights differ");
        }
    }
    // BF16 state carries master weights an F32 optimizer has no place for, and vice versa.
    let f32_model = Llama::load_as(&fixture_dir(), DType::F32).unwrap();
    let mut opt = AdamW::new(&f32_model, cfg).unwrap();
    let err = opt
        .load_state(&f32_model, &dir.path().join("BF16.safetensors"), 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("master."), "{err}");
    let bf16_model = Llama::load_as(&fixture_dir(), DType::BF16).unwrap();
    let mut opt = AdamW::new(&bf16_model, cfg).unwrap();
    let err = opt
        .load_state(&bf16_model, &dir.path().join("F32.safetensors"), 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("master.") && err.contains("not found"),
        "{err}"
    );
}
