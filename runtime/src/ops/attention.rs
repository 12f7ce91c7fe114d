//! Causal grouped-query attention (training, prefill and KV-cache decoding).
//!
//! Layouts (the natural output of the q/k/v projections, no transposes needed):
//! - `q`, `out`, `dq`, `dout`: `[B, T, H, D]`;
//! - `k`, `v`, `dk`, `dv`: `[B, S, Hkv, D]` with `H % Hkv == 0`; query head `h` reads KV head
//!   `h / (H / Hkv)` (HF `repeat_kv`);
//! - `lse`: `[B, H, T]` F32, the natural-log log-sum-exp of each query's scaled scores;
//! - `key_mask`: optional `[B, S]` index tensor, nonzero = the key may be attended (padding);
//! - KV cache: `[B, S_max, Hkv, D]`, i.e. the `k` layout with `S = S_max`.
//!
//! Query `t` of a sequence with `L` valid keys sits at absolute position `L - T + t` and attends
//! keys `s <= L - T + t` (causal) that the mask allows. A query with no attendable key gets
//! `out = 0`, `lse = -inf` and zero gradients.

use super::{check_f32, check_float, check_index, check_shape, dispatch};
use crate::backend::{AttnArgs, AttnGrads};
use crate::{Error, Result, Tensor};

/// Options of [`attention_fwd`] / [`attention_bwd`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionParams {
    /// Score scale, usually `1 / sqrt(D)`.
    pub scale: f32,
    /// Absolute position of the first query: queries sit at `q_offset .. q_offset + T`, keys
    /// `0 .. q_offset + T` are used (0 for training; the cache fill level for chunked prefill).
    pub q_offset: usize,
}

impl AttentionParams {
    /// `scale = 1/sqrt(head_dim)`, `q_offset = 0`.
    pub fn new(head_dim: usize) -> Self {
        AttentionParams {
            scale: 1.0 / (head_dim as f32).sqrt(),
            q_offset: 0,
        }
    }
}

/// The validated sizes of an attention call. `q_offset` places the queries of a training or
/// prefill call (`q_offset + T <= S`); decoding passes `None` (its `kv_lens` place them).
fn attn_args<'a>(
    op: &'static str,
    q: &'a Tensor,
    k: &'a Tensor,
    v: &'a Tensor,
    key_mask: Option<&'a Tensor>,
    scale: f32,
    q_offset: Option<usize>,
) -> Result<AttnArgs<'a>> {
    for (name, t) in [("q", q), ("k", k), ("v", v)] {
        check_float(op, name, t)?;
        super::check_rank(op, name, t, 4)?;
    }
    let (b, t, h, d) = (q.dim(0), q.dim(1), q.dim(2), q.dim(3));
    let (s, hkv) = (k.dim(1), k.dim(2));
    let bad = |why: &str| Error::Shape {
        op,
        msg: format!(
            "{why}: q {:?}, k {:?}, v {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        ),
    };
    if k.dim(0) != b || k.dim(3) != d || v.shape() != k.shape() {
        return Err(bad("k/v must be [B, S, Hkv, D] matching q [B, T, H, D]"));
    }
    if hkv == 0 || h % hkv != 0 {
        return Err(bad("n_heads must be a multiple of n_kv_heads"));
    }
    if let Some(m) = key_mask {
        check_index(op, "key_mask", m)?;
        check_shape(op, "key_mask", m, &[b, s])?;
    }
    if let Some(off) = q_offset.filter(|off| off + t > s) {
        return Err(Error::Shape {
            op,
            msg: format!("q_offset {off} + T {t} exceeds S {s} (k {:?})", k.shape()),
        });
    }
    Ok(AttnArgs {
        op,
        q,
        k,
        v,
        batch: b,
        t,
        s,
        n_heads: h,
        n_kv_heads: hkv,
        head_dim: d,
        scale,
        q_offset: q_offset.unwrap_or(0),
        kv_lens: None,
        key_mask,
    })
}

/// Causal attention forward. Writes `out` (overwritten) and, when given, `lse` `[B, H, T]`
/// (overwritten; needed by [`attention_bwd`]). Needs `q_offset + T <= S`.
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd(
    out: &mut Tensor,
    lse: Option<&mut Tensor>,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&Tensor>,
    p: &AttentionParams,
) -> Result<()> {
    const OP: &str = "attention_fwd";
    let a = attn_args(OP, q, k, v, key_mask, p.scale, Some(p.q_offset))?;
    check_float(OP, "out", out)?;
    check_shape(OP, "out", out, q.shape())?;
    if let Some(l) = &lse {
        check_f32(OP, "lse", l)?;
        check_shape(OP, "lse", l, &[a.batch, a.n_heads, a.t])?;
    }
    let be = dispatch(OP, &[out, q, k, v])?;
    be.attention_fwd(out, lse, &a)
}

/// Causal attention backward. `dq` `[B, T, H, D]`, `dk`/`dv` `[B, S, Hkv, D]` are overwritten
/// (keys never attended get zero); `out` and `lse` are the forward's outputs.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd(
    dq: &mut Tensor,
    dk: &mut Tensor,
    dv: &mut Tensor,
    dout: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    key_mask: Option<&Tensor>,
    p: &AttentionParams,
) -> Result<()> {
    const OP: &str = "attention_bwd";
    let a = attn_args(OP, q, k, v, key_mask, p.scale, Some(p.q_offset))?;
    for (name, t, want) in [
        ("dq", &*dq, q.shape()),
        ("dout", dout, q.shape()),
        ("out", out, q.shape()),
        ("dk", &*dk, k.shape()),
        ("dv", &*dv, k.shape()),
    ] {
        check_float(OP, name, t)?;
        check_shape(OP, name, t, want)?;
    }
    check_f32(OP, "lse", lse)?;
    check_shape(OP, "lse", lse, &[a.batch, a.n_heads, a.t])?;
    let be = dispatch(OP, &[dq, dk, dv, dout, q, k, v, out, lse])?;
    let g = AttnGrads {
        dq,
        dk,
        dv,
        dout,
        out,
        lse,
    };
    be.attention_bwd(g, &a)
}

/// Attention of `T` new queries per sequence against a KV cache with per-sequence fill levels
/// (batched generation of prompts with different lengths).
///
/// `q`, `out`: `[B, T, H, D]`; `k_cache`, `v_cache`: `[B, S_max, Hkv, D]` already holding the new
/// tokens' keys/values (write them first with [`kv_cache_write`]); `kv_lens`: `[B]` index tensor,
/// `kv_lens[b]` = valid cache rows of sequence `b` *including* the `T` new ones
/// (`T <= kv_lens[b] <= S_max`). Query `t` of sequence `b` is at position `kv_lens[b] - T + t`
/// and attends cache rows `0 ..= kv_lens[b] - T + t`. `out` is overwritten.
pub fn attention_decode(
    out: &mut Tensor,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    kv_lens: &Tensor,
    scale: f32,
) -> Result<()> {
    const OP: &str = "attention_decode";
    let mut a = attn_args(OP, q, k_cache, v_cache, None, scale, None)?;
    check_index(OP, "kv_lens", kv_lens)?;
    check_shape(OP, "kv_lens", kv_lens, &[a.batch])?;
    check_float(OP, "out", out)?;
    check_shape(OP, "out", out, q.shape())?;
    a.kv_lens = Some(kv_lens);
    let be = dispatch(OP, &[out, q, k_cache, v_cache, kv_lens])?;
    be.attention_fwd(out, None, &a)
}

/// Writes `new` `[B, T, Hkv, D]` into `cache` `[B, S_max, Hkv, D]` (same dtype) at rows
/// `starts[b] .. starts[b] + T` of each sequence `b`; `starts`: `[B]` index tensor.
pub fn kv_cache_write(cache: &mut Tensor, new: &Tensor, starts: &Tensor) -> Result<()> {
    const OP: &str = "kv_cache_write";
    super::check_rank(OP, "cache", cache, 4)?;
    super::check_rank(OP, "new", new, 4)?;
    check_index(OP, "starts", starts)?;
    if new.dim(0) != cache.dim(0)
        || new.shape()[2..] != cache.shape()[2..]
        || new.dim(1) > cache.dim(1)
    {
        return Err(Error::Shape {
            op: OP,
            msg: format!(
                "new {:?} does not fit cache {:?}",
                new.shape(),
                cache.shape()
            ),
        });
    }
    check_shape(OP, "starts", starts, &[cache.dim(0)])?;
    if new.dtype() != cache.dtype() {
        return Err(Error::DType {
            op: OP,
            got: new.dtype(),
            msg: format!("cache is {:?}", cache.dtype()),
        });
    }
    dispatch(OP, &[cache, new, starts])?.kv_cache_write(cache, new, starts)
}
