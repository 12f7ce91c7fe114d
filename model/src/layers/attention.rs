//! Self-attention with grouped KV heads and RoPE: `q/k/v` projections of the normed input,
//! rotary embeddings, causal attention, then `o_proj` added onto the residual stream.

use runtime::{ops, AttentionParams, Tensor};

use crate::activations::{LayerActs, LayerGrads};
use crate::error::Result;
use crate::layers::linear;
use crate::layers::rope::Rope;
use crate::params::LayerParams;

/// Where the keys/values come from.
pub enum Keys<'a> {
    /// This step's own keys: causal attention over the `T` tokens (training, scoring); the
    /// log-sum-exp is saved for the backward.
    Own,
    /// A KV cache `[B, S_max, Hkv, D]`: this step's keys are written at rows
    /// `starts[b] ..`, then queries attend rows `< kv_lens[b]` (= `starts[b] + T`).
    Cache {
        k: &'a mut Tensor,
        v: &'a mut Tensor,
        starts: &'a Tensor,
        kv_lens: &'a Tensor,
    },
}

fn scale(a: &LayerActs) -> f32 {
    1.0 / (a.q.dim(3) as f32).sqrt()
}

/// Reads `a.ln1`, writes `a.q`, `a.k`, `a.v`, `a.att` (and `a.lse` for [`Keys::Own`]) and
/// `a.resid_mid = x + att @ Wo^T`, or just `att @ Wo^T` when `x` is `None` (a tensor-parallel
/// rank whose partial `o_proj` output is summed with its peers', one of which adds `x`).
pub fn forward(
    w: &LayerParams,
    rope: &Rope,
    a: &mut LayerActs,
    x: Option<&Tensor>,
    pos: &Tensor,
    keys: Keys,
) -> Result<()> {
    linear::forward(&mut a.q, &a.ln1, &w.wq, false)?;
    linear::forward(&mut a.k, &a.ln1, &w.wk, false)?;
    linear::forward(&mut a.v, &a.ln1, &w.wv, false)?;
    rope.forward(&mut a.q, pos)?;
    rope.forward(&mut a.k, pos)?;
    let s = scale(a);
    match keys {
        Keys::Own => {
            let p = AttentionParams {
                scale: s,
                q_offset: 0,
            };
            ops::attention_fwd(&mut a.att, Some(&mut a.lse), &a.q, &a.k, &a.v, None, &p)?;
        }
        Keys::Cache {
            k,
            v,
            starts,
            kv_lens,
        } => {
            ops::kv_cache_write(k, &a.k, starts)?;
            ops::kv_cache_write(v, &a.v, starts)?;
            ops::attention_decode(&mut a.att, &a.q, k, v, kv_lens, s)?;
        }
    }
    if let Some(x) = x {
        ops::copy_rows(&mut a.resid_mid, 0, x)?;
    }
    linear::forward(&mut a.resid_mid, &a.att, &w.wo, x.is_some())
}

/// Given `g.d_resid_mid` (gradient of `resid_mid`), accumulates the projection weights'
/// gradients into `dw` and writes the gradient of `ln1` into `g.d_ln`. The residual path's
/// share of the input gradient is the caller's (it is `d_resid_mid` itself).
pub fn backward(
    w: &LayerParams,
    dw: &mut LayerParams,
    rope: &Rope,
    a: &LayerActs,
    pos: &Tensor,
    g: &mut LayerGrads,
) -> Result<()> {
    linear::backward(
        Some(&mut g.d_att),
        &mut dw.wo,
        &g.d_resid_mid,
        &a.att,
        &w.wo,
        false,
    )?;
    let p = AttentionParams {
        scale: scale(a),
        q_offset: 0,
    };
    ops::attention_bwd(
        &mut g.dq, &mut g.dk, &mut g.dv, &g.d_att, &a.q, &a.k, &a.v, &a.att, &a.lse, None, &p,
    )?;
    rope.backward(&mut g.dq, pos)?;
    rope.backward(&mut g.dk, pos)?;
    linear::backward(Some(&mut g.d_ln), &mut dw.wq, &g.dq, &a.ln1, &w.wq, false)?;
    linear::backward(Some(&mut g.d_ln), &mut dw.wk, &g.dk, &a.ln1, &w.wk, true)?;
    linear::backward(Some(&mut g.d_ln), &mut dw.wv, &g.dv, &a.ln1, &w.wv, true)
}
