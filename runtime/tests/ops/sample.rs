use crate::common::*;
use runtime::{argmax, sample, sample_token, SamplingParams};

#[test]
fn greedy_and_degenerate_filters_pick_the_argmax() {
    let logits = [0.1f32, 2.0, -1.0, 2.0, 1.5];
    assert_eq!(argmax(&logits), 1);
    let mut g = rng(1);
    assert_eq!(
        sample_token(&logits, &SamplingParams::greedy(), &mut g).unwrap(),
        1
    );
    let k1 = SamplingParams {
        temperature: 1.0,
        top_k: 1,
        top_p: 1.0,
    };
    let p_small = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1e-6,
    };
    let l2 = [0.1f32, 2.5, -1.0, 2.0];
    for _ in 0..20 {
        assert_eq!(sample_token(&l2, &k1, &mut g).unwrap(), 1);
        assert_eq!(sample_token(&l2, &p_small, &mut g).unwrap(), 1);
    }
    let t = t32(&[0.0, 5.0, 1.0, 9.0, 0.0, 0.0], &[2, 3]);
    assert_eq!(
        sample(&t, &SamplingParams::greedy(), &mut g).unwrap(),
        vec![1, 0]
    );
}

fn histogram(logits: &[f32], p: &SamplingParams, draws: usize, seed: u64) -> Vec<f64> {
    let mut g = rng(seed);
    let mut h = vec![0.0; logits.len()];
    for _ in 0..draws {
        h[sample_token(logits, p, &mut g).unwrap()] += 1.0 / draws as f64;
    }
    h
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn temperature_top_k_top_p_follow_the_filtered_distribution() {
    let logits = [1.0f32, 0.0, 2.0, -1.0, 0.5];
    let l64: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
    let n = 40000;
    // temperature 2: softmax(l / 2)
    let h = histogram(
        &logits,
        &SamplingParams {
            temperature: 2.0,
            top_k: 0,
            top_p: 1.0,
        },
        n,
        5,
    );
    let want = softmax(&l64.iter().map(|x| x / 2.0).collect::<Vec<_>>());
    assert_close("temperature", &h, &want, 0.015);
    // top-k 2 keeps logits 2.0 and 1.0
    let h = histogram(
        &logits,
        &SamplingParams {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
        },
        n,
        6,
    );
    let kept = softmax(&[1.0, 2.0]);
    assert_close("top-k", &h, &[kept[0], 0.0, kept[1], 0.0, 0.0], 0.015);
    // top-p 0.7: probs sorted 0.464 (2.0), 0.171 (1.0), 0.103, ...; 0.464 < 0.7 so 1.0 is kept too
    let full = softmax(&l64);
    assert!(full[2] < 0.7 && full[2] + full[0] >= 0.7);
    let h = histogram(
        &logits,
        &SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.7,
        },
        n,
        7,
    );
    assert_close("top-p", &h, &[kept[0], 0.0, kept[1], 0.0, 0.0], 0.015);
    // same seed, same tokens
    let p = SamplingParams {
        temperature: 0.8,
        top_k: 3,
        top_p: 0.9,
    };
    assert_eq!(
        histogram(&logits, &p, 500, 9),
        histogram(&logits, &p, 500, 9)
    );
    let mut g = rng(1);
    assert!(sample_token(&[], &p, &mut g).is_err());
    assert!(sample_token(&logits, &SamplingParams { top_p: 0.0, ..p }, &mut g).is_err());
}
