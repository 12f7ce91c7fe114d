//! Token sampling on host logits: greedy, temperature, top-k, top-p (HF warper semantics).

use crate::error::invalid;
use crate::{Error, Result, Rng, Tensor};

/// How to pick the next token. `temperature == 0` means greedy (no RNG draw).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Keep the `top_k` largest logits (ties with the k-th kept); 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`
    /// (HF `TopPLogitsWarper`: drop tokens whose ascending cumulative prob is `<= 1 - top_p`,
    /// always keeping the most likely); 1.0 disables.
    pub top_p: f32,
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

/// Index of the largest logit (the first one on ties, like `torch.argmax`). NaN is never chosen
/// unless every logit is NaN.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] || logits[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best
}

/// Samples one token id from one row of logits. Consumes exactly one `rng.next_f64()` unless
/// greedy.
pub fn sample_token(logits: &[f32], p: &SamplingParams, rng: &mut Rng) -> Result<usize> {
    const OP: &str = "sample_token";
    if logits.is_empty() {
        return invalid(OP, "empty logits row");
    }
    let ok = p.temperature >= 0.0 && p.top_p > 0.0 && p.top_p <= 1.0;
    if !ok {
        return invalid(
            OP,
            format!(
                "temperature {} must be >= 0 and top_p {} in (0, 1]",
                p.temperature, p.top_p
            ),
        );
    }
    if p.temperature == 0.0 {
        return Ok(argmax(logits));
    }
    let inv_t = 1.0 / p.temperature as f64;
    let mut z: Vec<f64> = logits.iter().map(|&x| x as f64 * inv_t).collect();
    // Ascending order (stable), as HF sorts for top-p; top-k uses the same order.
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by(|&a, &b| z[a].partial_cmp(&z[b]).unwrap_or(std::cmp::Ordering::Equal));
    if p.top_k > 0 && p.top_k < z.len() {
        let kth = z[order[z.len() - p.top_k]];
        for v in z.iter_mut() {
            if *v < kth {
                *v = f64::NEG_INFINITY;
            }
        }
    }
    if p.top_p < 1.0 {
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = z.iter().map(|&v| (v - max).exp()).sum();
        let mut cum = 0.0;
        let last = order[order.len() - 1];
        for &i in &order {
            cum += (z[i] - max).exp() / total;
            if cum <= 1.0 - p.top_p as f64 && i != last {
                z[i] = f64::NEG_INFINITY;
            }
        }
    }
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return Err(Error::Invalid {
            op: OP,
            msg: "no finite logit to sample from".into(),
        });
    }
    let w: Vec<f64> = z.iter().map(|&v| (v - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let u = rng.next_f64() * total;
    let mut acc = 0.0;
    let mut pick = None;
    for (i, &wi) in w.iter().enumerate() {
        if wi > 0.0 {
            acc += wi;
            pick = Some(i);
            if u < acc {
                break;
            }
        }
    }
    pick.ok_or(Error::Invalid {
        op: OP,
        msg: "no token with positive probability".into(),
    })
}

/// Samples one token per row of `logits` `[B, V]` (any float dtype, CPU), rows in order.
pub fn sample(logits: &Tensor, p: &SamplingParams, rng: &mut Rng) -> Result<Vec<u32>> {
    if logits.rank() != 2 {
        return Err(Error::Shape {
            op: "sample",
            msg: format!("logits {:?} must be [B, V]", logits.shape()),
        });
    }
    let v = logits.dim(1);
    let data = logits.to_f32_vec()?;
    data.chunks(v.max(1))
        .take(logits.dim(0))
        .map(|row| sample_token(row, p, rng).map(|i| i as u32))
        .collect()
}
