//! LM head (`logits = h @ W^T`, `W` = `lm_head.weight` or the tied embedding) and the
//! next-token cross-entropy on its logits.

use runtime::{ops, CrossEntropyStats, Tensor};

use crate::error::{ModelError, Result};
use crate::layers::linear;

/// Label value that contributes no loss (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

pub fn forward(logits: &mut Tensor, h: &Tensor, w: &Tensor) -> Result<()> {
    linear::forward(logits, h, w, false)
}

/// `dw += dlogits^T @ h`, `dh = dlogits @ w`.
pub fn backward(
    dh: &mut Tensor,
    dw: &mut Tensor,
    dlogits: &Tensor,
    h: &Tensor,
    w: &Tensor,
) -> Result<()> {
    linear::backward(Some(dh), dw, dlogits, h, w, false)
}

/// Mean cross-entropy of `logits [B, T, V]` against `targets [B, T]` (rows equal to
/// [`IGNORE`] skipped); per-row losses and log-sum-exps are kept for the backward.
pub fn loss_forward(
    losses: &mut Tensor,
    lse: &mut Tensor,
    logits: &Tensor,
    targets: &Tensor,
) -> Result<CrossEntropyStats> {
    Ok(ops::cross_entropy_fwd(
        losses, lse, logits, targets, IGNORE,
    )?)
}

/// `dlogits = scale * (softmax - onehot)` per non-ignored row (`scale = 1 / token count`).
pub fn loss_backward(
    dlogits: &mut Tensor,
    logits: &Tensor,
    lse: &Tensor,
    targets: &Tensor,
    scale: f32,
) -> Result<()> {
    Ok(ops::cross_entropy_bwd(
        dlogits, logits, lse, targets, IGNORE, scale, None,
    )?)
}

/// Next-token targets for causal LM training: `targets[b, t] = ids[b, t + 1]`, the last
/// position of each row [`IGNORE`]d, as transformers shifts `labels = input_ids`.
/// `mask` (same length as `ids`, optional) marks which target tokens count.
pub fn shifted_targets(
    ids: &[i64],
    batch: usize,
    seq: usize,
    mask: Option<&[bool]>,
) -> Result<Tensor> {
    if ids.len() != batch * seq || mask.is_some_and(|m| m.len() != ids.len()) {
        return Err(ModelError::Invalid(format!(
            "shifted_targets: {} ids (mask {:?}) for batch {batch} x seq {seq}",
            ids.len(),
            mask.map(|m| m.len())
        )));
    }
    let mut t = vec![IGNORE; ids.len()];
    for b in 0..batch {
        for i in 0..seq.saturating_sub(1) {
            let j = b * seq + i + 1;
            if mask.is_none_or(|m| m[j]) {
                t[b * seq + i] = ids[j];
            }
        }
    }
    Ok(Tensor::from_vec(t, &[batch, seq])?)
}
