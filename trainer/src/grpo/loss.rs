//! The per-token clipped GRPO loss, its aggregation (`loss_type`) and its exact gradient with
//! respect to the policy log-probabilities, so the model's backward pass can start from it.

use std::str::FromStr;

use super::GrpoError;

/// How per-token losses are averaged (`loss_type` in TRL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over sequences of each sequence's token mean (an empty sequence divides by 1).
    Grpo,
    /// Sum over all completion tokens / number of completion tokens.
    Bnpo,
    /// Sum / (sequences × max_completion_length).
    DrGrpo,
    /// As bnpo in a single process without gradient accumulation.
    Dapo,
}

impl FromStr for LossType {
    type Err = GrpoError;
    fn from_str(s: &str) -> Result<Self, GrpoError> {
        match s {
            "grpo" => Ok(Self::Grpo),
            "bnpo" => Ok(Self::Bnpo),
            "dr_grpo" => Ok(Self::DrGrpo),
            "dapo" => Ok(Self::Dapo),
            _ => Err(GrpoError::Unknown {
                what: "loss_type",
                value: s.to_string(),
                expected: "grpo, bnpo, dr_grpo, dapo",
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossConfig {
    pub loss_type: LossType,
    /// Weight of the k3 KL to the reference policy; 0 needs no reference log-probs.
    pub beta: f64,
    /// The ratio is clipped to `[1 - epsilon, 1 + epsilon_high]`.
    pub epsilon: f64,
    pub epsilon_high: f64,
    /// Used by `dr_grpo` only.
    pub max_completion_length: usize,
}

/// Per-token log-probabilities of `n_seq` completions padded to `seq_len`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct TokenLogps<'a> {
    pub n_seq: usize,
    pub seq_len: usize,
    /// The policy being optimised.
    pub logp: &'a [f32],
    /// The policy that sampled the completions; `None` (one iteration per batch) means it
    /// is the current policy detached, so the ratio is exactly 1 but still has a gradient.
    pub old_logp: Option<&'a [f32]>,
    /// The frozen reference policy, needed when `beta != 0`.
    pub ref_logp: Option<&'a [f32]>,
    /// 1 for completion tokens that count, 0 for padding.
    pub mask: &'a [f32],
}

#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput {
    pub loss: f64,
    /// d loss / d logp, same layout as `logp` (zero on masked tokens).
    pub grad: Vec<f32>,
    /// Fraction of counted tokens whose clipped term removed the gradient: ratio below
    /// `1 - epsilon` with a negative advantage, or above `1 + epsilon_high` with a positive one.
    pub clip_fraction: f64,
    pub low_clip_fraction: f64,
    pub high_clip_fraction: f64,
    /// Masked mean of the per-token k3 KL (0 when `beta == 0`).
    pub kl: f64,
}

fn check(what: &'static str, got: usize, expected: usize) -> Result<(), GrpoError> {
    if got == expected {
        Ok(())
    } else {
        Err(GrpoError::Length {
            what,
            got,
            expected,
        })
    }
}

/// The loss of one batch, given one advantage per sequence.
pub fn grpo_loss(
    cfg: &LossConfig,
    x: &TokenLogps<'_>,
    advantages: &[f64],
) -> Result<LossOutput, GrpoError> {
    let n = x.n_seq * x.seq_len;
    check("logp", x.logp.len(), n)?;
    check("mask", x.mask.len(), n)?;
    check("advantages", advantages.len(), x.n_seq)?;
    if let Some(o) = x.old_logp {
        check("old_logp", o.len(), n)?;
    }
    let reference = match (cfg.beta != 0.0, x.ref_logp) {
        (true, None) => return Err(GrpoError::MissingReference(cfg.beta)),
        (true, Some(r)) => {
            check("ref_logp", r.len(), n)?;
            Some(r)
        }
        (false, _) => None,
    };
    if cfg.loss_type == LossType::DrGrpo && cfg.max_completion_length == 0 {
        return Err(GrpoError::Config(
            "dr_grpo needs max_completion_length > 0".into(),
        ));
    }
    let (lo, hi) = (1.0 - cfg.epsilon, 1.0 + cfg.epsilon_high);

    // Per-token loss and its derivative, before aggregation.
    let mut tok_loss = vec![0f64; n];
    let mut tok_grad = vec![0f64; n];
    let (mut low, mut high, mut kl_sum) = (0f64, 0f64, 0f64);
    for (s, &a) in advantages.iter().enumerate() {
        for t in s * x.seq_len..(s + 1) * x.seq_len {
            let m = x.mask[t] as f64;
            if m == 0.0 {
                continue;
            }
            let logp = x.logp[t] as f64;
            let ratio = x.old_logp.map_or(1.0, |o| (logp - o[t] as f64).exp());
            let clipped = ratio.clamp(lo, hi);
            let (unclipped_term, clipped_term) = (ratio * a, clipped * a);
            // -min(ratio*A, clip(ratio)*A): the clipped branch is constant outside the range;
            // on a tie both branches carry the same slope ratio*A.
            let (mut l, mut g) = if unclipped_term <= clipped_term {
                (-unclipped_term, -ratio * a)
            } else {
                (-clipped_term, 0.0)
            };
            if let Some(r) = reference {
                let d = r[t] as f64 - logp;
                let kl = d.exp() - d - 1.0;
                l += cfg.beta * kl;
                g += cfg.beta * (1.0 - d.exp());
                kl_sum += m * kl;
            }
            low += m * f64::from(u8::from(ratio < lo && a < 0.0));
            high += m * f64::from(u8::from(ratio > hi && a > 0.0));
            tok_loss[t] = m * l;
            tok_grad[t] = m * g;
        }
    }

    let tokens: f64 = x.mask.iter().map(|&m| m as f64).sum();
    let token_norm = tokens.max(1.0);
    let mut loss = 0f64;
    let mut grad = vec![0f32; n];
    for s in 0..x.n_seq {
        let row = s * x.seq_len..(s + 1) * x.seq_len;
        let scale = match cfg.loss_type {
            LossType::Grpo => {
                let len: f64 = x.mask[row.clone()].iter().map(|&m| m as f64).sum();
                1.0 / (len.max(1.0) * x.n_seq as f64)
            }
            LossType::Bnpo | LossType::Dapo => 1.0 / token_norm,
            LossType::DrGrpo => 1.0 / (x.n_seq * cfg.max_completion_length) as f64,
        };
        loss += tok_loss[row.clone()].iter().sum::<f64>() * scale;
        for t in row {
            grad[t] = (tok_grad[t] * scale) as f32;
        }
    }
    Ok(LossOutput {
        loss,
        grad,
        clip_fraction: (low + high) / token_norm,
        low_clip_fraction: low / token_norm,
        high_clip_fraction: high / token_norm,
        kl: kl_sum / token_norm,
    })
}
