//! Shapes the fixture does not cover — tied embeddings, `llama3` RoPE scaling, one KV head,
//! an explicit head_dim, more layers — on random weights: cached decoding equals the full
//! forward, the hand-written gradient matches finite differences, and save/load round-trips.

mod model_support;

use model::{Activations, GenerateConfig, InferBuffers, KvCache, Llama, LlamaConfig, LlamaParams};
use model_support::loss_and_grads;
use runtime::{DType, Rng, Tensor};

fn variant() -> LlamaConfig {
    LlamaConfig::from_json(serde_json::json!({
        "model_type": "llama", "hidden_size": 32, "intermediate_size": 48,
        "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 16, "vocab_size": 64, "max_position_embeddings": 64,
        "tie_word_embeddings": true, "rms_norm_eps": 1e-5, "eos_token_id": [3, 4],
        "rope_theta": 10000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    }))
    .unwrap()
}

fn model(seed: u64) -> Llama {
    Llama::from_params(
        variant(),
        LlamaParams::random(&variant(), DType::F32, 0.2, seed).unwrap(),
    )
    .unwrap()
}

fn rows(seed: u64, b: usize, t: usize) -> Vec<Vec<u32>> {
    let mut r = Rng::new(seed);
    (0..b)
        .map(|_| (0..t).map(|_| r.below(64) as u32).collect())
        .collect()
}

#[test]
fn gradient_matches_finite_differences_along_random_directions() {
    let m = model(1);
    let data = rows(2, 2, 12);
    let (_, g) = loss_and_grads(&m, &data, false);
    assert!(g.lm_head.is_none());
    let mut rng = Rng::new(3);
    let n_tensors = g.tensors().len();
    // One random direction per parameter tensor (each its own check), and one over all.
    for which in (0..n_tensors).map(Some).chain([None]) {
        let dirs: Vec<Vec<f32>> = m
            .params
            .tensors()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (0..t.numel())
                    .map(|_| {
                        if which.is_none_or(|w| w == i) {
                            rng.normal() as f32
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let analytic: f64 = g
            .tensors()
            .iter()
            .zip(&dirs)
            .map(|(t, d)| {
                t.to_f32_vec()
                    .unwrap()
                    .iter()
                    .zip(d)
                    .map(|(a, b)| (*a as f64) * (*b as f64))
                    .sum::<f64>()
            })
            .sum();
        let eps = 1e-3f32;
        let shifted = |sign: f32| {
            let mut p = m.params.copy().unwrap();
            for (t, d) in p.tensors_mut().into_iter().zip(&dirs) {
                let v: Vec<f32> = t
                    .to_f32_vec()
                    .unwrap()
                    .iter()
                    .zip(d)
                    .map(|(x, u)| x + sign * eps * u)
                    .collect();
                *t = Tensor::from_vec(v, t.shape()).unwrap();
            }
            let mm = Llama::from_params(m.config.clone(), p).unwrap();
            loss_and_grads(&mm, &data, false).0
        };
        let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * eps as f64);
        let err = (numeric - analytic).abs() / analytic.abs().max(1e-2);
        assert!(
            err < 2e-2,
            "tensor {which:?}: analytic {analytic} vs numeric {numeric}"
        );
    }
}

#[test]
fn cached_decoding_equals_full_forward_and_batching() {
    let m = model(4);
    let data = rows(5, 3, 20);
    let ids = m.ids_tensor(&data).unwrap();
    let mut acts = Activations::new(&m.config, 3, 20, true, &m.device).unwrap();
    m.forward(&ids, &mut acts).unwrap();
    let full = acts.logits.to_f32_vec().unwrap();
    let v = 64;
    let mut cache = KvCache::new(&m.config, 3, 20, DType::F32, &m.device).unwrap();
    let mut one = InferBuffers::new(&m, 3, 1).unwrap();
    for pos in 0..20 {
        let step: Vec<Vec<u32>> = data.iter().map(|r| vec![r[pos]]).collect();
        m.forward_cached(
            &m.ids_tensor(&step).unwrap(),
            &[pos; 3],
            &[0; 3],
            &mut cache,
            &mut one,
        )
        .unwrap();
        let got = one.logits.to_f32_vec().unwrap();
        for b in 0..3 {
            let want = &full[(b * 20 + pos) * v..(b * 20 + pos + 1) * v];
            let err = got[b * v..(b + 1) * v]
                .iter()
                .zip(want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-4, "seq {b} pos {pos}: {err}");
        }
    }
    let prompts = vec![
        data[0][..3].to_vec(),
        data[1][..11].to_vec(),
        data[2][..7].to_vec(),
    ];
    let cfg = GenerateConfig::greedy(9, m.config.eos_token_ids.clone());
    let batch = m.generate(&prompts, &cfg).unwrap();
    for (p, out) in prompts.iter().zip(&batch) {
        assert_eq!(out, &m.generate(std::slice::from_ref(p), &cfg).unwrap()[0]);
    }
}

#[test]
fn tied_model_saves_without_lm_head_and_loads_back() {
    let m = model(6);
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path(), DType::F32, None).unwrap();
    let names = model::safetensors_io::read_all(&dir.path().join("model.safetensors")).unwrap();
    assert!(!names.contains_key("lm_head.weight"));
    assert_eq!(names.len(), model::params::param_shapes(&m.config).len());
    let back = Llama::load(dir.path()).unwrap();
    assert_eq!(
        back.config.to_json(DType::F32),
        m.config.to_json(DType::F32)
    );
    let data = rows(7, 1, 9);
    assert_eq!(
        loss_and_grads(&m, &data, false).0,
        loss_and_grads(&back, &data, false).0
    );
}
