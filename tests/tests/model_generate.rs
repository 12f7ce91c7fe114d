//! KV-cache generation: transformers' greedy decode, batching of different-length prompts,
//! EOS handling, seeded sampling, cached-vs-full logits, and per-token log-probs.

mod model_support;

use model::{GenerateConfig, InferBuffers, KvCache, Llama};
use model_support::*;
use runtime::{DType, SamplingParams};

fn load() -> Llama {
    Llama::load(&fixture_dir()).unwrap()
}

#[test]
fn greedy_decode_matches_transformers() {
    let m = load();
    let r = reference();
    let prompt = id_rows(&r["greedy.prompt"]).remove(0);
    let want = id_rows(&r["greedy.output"]).remove(0);
    let cfg = GenerateConfig::greedy(want.len() - prompt.len(), m.config.eos_token_ids.clone());
    let out = m.generate(std::slice::from_ref(&prompt), &cfg).unwrap();
    let mut got = prompt.clone();
    got.extend(&out[0]);
    assert_eq!(got, want);
}

/// Prompts of different lengths taken from the reference inputs.
fn prompts() -> Vec<Vec<u32>> {
    let rows = id_rows(&reference()["input_ids"]);
    vec![
        rows[0][..5].to_vec(),
        rows[1][..13].to_vec(),
        rows[0][..1].to_vec(),
        rows[1][..9].to_vec(),
    ]
}

#[test]
fn batched_prompts_of_different_lengths_equal_single_runs() {
    let m = load();
    let cfg = GenerateConfig::greedy(12, vec![]);
    let batch = m.generate(&prompts(), &cfg).unwrap();
    for (p, got) in prompts().iter().zip(&batch) {
        let solo = m.generate(std::slice::from_ref(p), &cfg).unwrap();
        assert_eq!(got, &solo[0], "prompt {p:?}");
        assert_eq!(got.len(), 12);
    }
}

#[test]
fn eos_stops_only_its_sequence() {
    let m = load();
    let ps = prompts();
    let free = m
        .generate(&ps, &GenerateConfig::greedy(10, vec![]))
        .unwrap();
    // Make the 3rd token that prompt 1 generates an EOS: it must stop there (keeping the EOS)
    // while the others run on unchanged (they are compacted out of the batch, not disturbed).
    let eos = free[1][2];
    let out = m
        .generate(&ps, &GenerateConfig::greedy(10, vec![eos]))
        .unwrap();
    for (f, o) in free.iter().zip(&out) {
        let stop = f.iter().position(|&t| t == eos).map_or(f.len(), |i| i + 1);
        assert_eq!(o, &f[..stop].to_vec());
    }
    assert_eq!(
        out[1].len(),
        free[1].iter().position(|&t| t == eos).unwrap() + 1
    );
}

#[test]
fn sampling_is_seeded_and_top_k_one_is_greedy() {
    let m = load();
    let ps = prompts();
    let sample = |seed, top_k, top_p| {
        let cfg = GenerateConfig {
            max_new_tokens: 8,
            sampling: SamplingParams {
                temperature: 1.5,
                top_k,
                top_p,
            },
            seed,
            eos_token_ids: vec![],
        };
        m.generate(&ps, &cfg).unwrap()
    };
    assert_eq!(sample(7, 0, 1.0), sample(7, 0, 1.0));
    assert_ne!(sample(7, 0, 1.0), sample(8, 0, 1.0));
    assert_eq!(sample(7, 0, 0.9), sample(7, 0, 0.9));
    let greedy = m.generate(&ps, &GenerateConfig::greedy(8, vec![])).unwrap();
    assert_eq!(sample(3, 1, 1.0), greedy);
    assert_eq!(
        sample(3, 0, 1e-6),
        greedy,
        "top_p ~ 0 keeps only the most likely token"
    );
}

#[test]
fn cached_prefill_and_decode_logits_equal_the_full_forward() {
    let m = load();
    let r = reference();
    let rows = id_rows(&r["input_ids"]);
    let t = rows[0].len();
    let logits = r["logits"].to_f32_vec().unwrap();
    let v = m.config.vocab_size;
    // Prefill both rows' first 20 tokens, then decode the rest one token at a time.
    let split = 20.min(t - 1);
    let mut cache = KvCache::new(&m.config, 2, t, DType::F32, &m.device).unwrap();
    let mut buf = InferBuffers::new(&m, 2, split).unwrap();
    let first: Vec<Vec<u32>> = rows.iter().map(|r| r[..split].to_vec()).collect();
    m.forward_cached(
        &m.ids_tensor(&first).unwrap(),
        &[0, 0],
        &[split - 1, split - 1],
        &mut cache,
        &mut buf,
    )
    .unwrap();
    let check = |got: &[f32], pos: usize| {
        for b in 0..2 {
            let want = &logits[(b * t + pos) * v..(b * t + pos + 1) * v];
            let err = got[b * v..(b + 1) * v]
                .iter()
                .zip(want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(err <= 1e-4, "row {b} position {pos}: max-abs error {err}");
        }
    };
    check(&buf.logits.to_f32_vec().unwrap(), split - 1);
    let mut step = InferBuffers::new(&m, 2, 1).unwrap();
    for pos in split..t {
        let ids: Vec<Vec<u32>> = rows.iter().map(|r| vec![r[pos]]).collect();
        m.forward_cached(
            &m.ids_tensor(&ids).unwrap(),
            &[pos, pos],
            &[0, 0],
            &mut cache,
            &mut step,
        )
        .unwrap();
        check(&step.logits.to_f32_vec().unwrap(), pos);
    }
}

#[test]
fn token_logprobs_equal_log_softmax_of_reference_logits() {
    let m = load();
    let r = reference();
    let row = id_rows(&r["input_ids"]).remove(0);
    let v = m.config.vocab_size;
    let logits = r["logits"].to_f32_vec().unwrap();
    let got = m.token_logprobs(&row).unwrap();
    assert_eq!(got.len(), row.len() - 1);
    for (i, lp) in got.iter().enumerate() {
        let z = &logits[i * v..(i + 1) * v];
        let mx = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = mx + z.iter().map(|&x| (x as f64 - mx).exp()).sum::<f64>().ln();
        let want = z[row[i + 1] as usize] as f64 - lse;
        assert!(
            (*lp as f64 - want).abs() <= 1e-4,
            "position {i}: {lp} vs {want}"
        );
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let m = load();
    let cfg = GenerateConfig::greedy(4, vec![]);
    let err = m.generate(&[vec![]], &cfg).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let big = m.config.vocab_size as u32;
    let err = m.generate(&[vec![1, big]], &cfg).unwrap_err();
    assert!(err.to_string().contains(&big.to_string()), "{err}");
    let err = m.token_logprobs(&[big]).unwrap_err();
    assert!(err.to_string().contains("vocabulary"), "{err}");
    let too_long = vec![1u32; m.config.max_position_embeddings];
    assert!(m.generate(&[too_long], &cfg).is_err());
}
