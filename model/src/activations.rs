//! Preallocated per-step buffers: everything the forward keeps for the backward (llm.c style),
//! and the backward's scratch. Shapes are fixed per (batch, seq) so one step allocates nothing.

use runtime::{DType, Device, Tensor};

use crate::config::LlamaConfig;
use crate::error::Result;

fn zeros(shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::zeros(shape, DType::F32, device)?)
}

/// What one decoder layer's forward produces (and its backward reads).
#[derive(Debug)]
pub struct LayerActs {
    pub ln1: Tensor,
    pub ln1_rstd: Tensor,
    /// `[B, T, H, D]`, after RoPE.
    pub q: Tensor,
    /// `[B, T, Hkv, D]`, after RoPE.
    pub k: Tensor,
    pub v: Tensor,
    /// Attention output `[B, T, H, D]` (before `o_proj`).
    pub att: Tensor,
    /// `[B, H, T]` log-sum-exp of the scores (training only).
    pub lse: Tensor,
    /// Residual stream after the attention block.
    pub resid_mid: Tensor,
    pub ln2: Tensor,
    pub ln2_rstd: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    /// `silu(gate) * up`.
    pub act: Tensor,
}

impl LayerActs {
    pub fn new(c: &LlamaConfig, b: usize, t: usize, device: &Device) -> Result<Self> {
        let (h, f) = (c.hidden_size, c.intermediate_size);
        let (nh, nkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        Ok(LayerActs {
            ln1: zeros(&[b, t, h], device)?,
            ln1_rstd: zeros(&[b, t], device)?,
            q: zeros(&[b, t, nh, d], device)?,
            k: zeros(&[b, t, nkv, d], device)?,
            v: zeros(&[b, t, nkv, d], device)?,
            att: zeros(&[b, t, nh, d], device)?,
            lse: zeros(&[b, nh, t], device)?,
            resid_mid: zeros(&[b, t, h], device)?,
            ln2: zeros(&[b, t, h], device)?,
            ln2_rstd: zeros(&[b, t], device)?,
            gate: zeros(&[b, t, f], device)?,
            up: zeros(&[b, t, f], device)?,
            act: zeros(&[b, t, f], device)?,
        })
    }

    fn bytes(&self) -> usize {
        [
            &self.ln1,
            &self.ln1_rstd,
            &self.q,
            &self.k,
            &self.v,
            &self.att,
            &self.lse,
            &self.resid_mid,
            &self.ln2,
            &self.ln2_rstd,
            &self.gate,
            &self.up,
            &self.act,
        ]
        .iter()
        .map(|t| t.size_in_bytes())
        .sum()
    }
}

/// Everything one training/scoring forward keeps for `[B, T]` tokens.
#[derive(Debug)]
pub struct Activations {
    pub batch: usize,
    pub seq: usize,
    /// When set, only the layer inputs are kept and each layer's activations are recomputed
    /// in the backward (one shared `LayerActs`).
    pub recompute: bool,
    /// Token positions `[B, T]` (`0..T` per row).
    pub pos: Tensor,
    /// `resid[0]` = embeddings, `resid[l + 1]` = output of layer `l` (`num_layers + 1` tensors).
    pub resid: Vec<Tensor>,
    /// One per layer, or a single shared one with `recompute`.
    pub layers: Vec<LayerActs>,
    /// Final norm output `[B, T, C]` (transformers' last hidden state).
    pub lnf: Tensor,
    pub lnf_rstd: Tensor,
    /// `[B, T, V]`.
    pub logits: Tensor,
    /// Per-token log-sum-exp and loss `[B, T]` (written by the loss).
    pub lse: Tensor,
    pub losses: Tensor,
}

impl Activations {
    pub fn new(
        c: &LlamaConfig,
        b: usize,
        t: usize,
        recompute: bool,
        device: &Device,
    ) -> Result<Self> {
        let h = c.hidden_size;
        let n_acts = if recompute { 1 } else { c.num_layers };
        let pos: Vec<i64> = (0..b).flat_map(|_| 0..t as i64).collect();
        Ok(Activations {
            batch: b,
            seq: t,
            recompute,
            pos: Tensor::from_vec(pos, &[b, t])?.to_device(device)?,
            resid: (0..=c.num_layers)
                .map(|_| zeros(&[b, t, h], device))
                .collect::<Result<_>>()?,
            layers: (0..n_acts)
                .map(|_| LayerActs::new(c, b, t, device))
                .collect::<Result<_>>()?,
            lnf: zeros(&[b, t, h], device)?,
            lnf_rstd: zeros(&[b, t], device)?,
            logits: zeros(&[b, t, c.vocab_size], device)?,
            lse: zeros(&[b, t], device)?,
            losses: zeros(&[b, t], device)?,
        })
    }

    /// The hidden states transformers returns with `output_hidden_states=True`: the
    /// embeddings, each layer's output but the last, then the final norm's output.
    pub fn hidden_states(&self) -> Vec<&Tensor> {
        let mut v: Vec<&Tensor> = self.resid[..self.resid.len() - 1].iter().collect();
        v.push(&self.lnf);
        v
    }

    /// Bytes held by these buffers.
    pub fn bytes(&self) -> usize {
        let base: usize = self.resid.iter().map(|t| t.size_in_bytes()).sum();
        base + self.layers.iter().map(LayerActs::bytes).sum::<usize>()
            + self.pos.size_in_bytes()
            + self.lnf.size_in_bytes()
            + self.lnf_rstd.size_in_bytes()
            + self.logits.size_in_bytes()
            + self.lse.size_in_bytes()
            + self.losses.size_in_bytes()
    }
}

/// Scratch for one layer's backward.
#[derive(Debug)]
pub struct LayerGrads {
    pub d_resid_mid: Tensor,
    /// Gradient of a norm's output.
    pub d_ln: Tensor,
    pub d_att: Tensor,
    pub dq: Tensor,
    pub dk: Tensor,
    pub dv: Tensor,
    pub d_act: Tensor,
    pub d_gate: Tensor,
    pub d_up: Tensor,
}

/// Scratch for the backward of `[B, T]` tokens.
#[derive(Debug)]
pub struct GradBuffers {
    /// Gradient of the residual stream, ping-ponged between layers.
    pub d_resid: Tensor,
    pub d_resid_next: Tensor,
    pub layer: LayerGrads,
    pub d_logits: Tensor,
}

impl GradBuffers {
    pub fn new(c: &LlamaConfig, b: usize, t: usize, device: &Device) -> Result<Self> {
        let (h, f) = (c.hidden_size, c.intermediate_size);
        let (nh, nkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        Ok(GradBuffers {
            d_resid: zeros(&[b, t, h], device)?,
            d_resid_next: zeros(&[b, t, h], device)?,
            layer: LayerGrads {
                d_resid_mid: zeros(&[b, t, h], device)?,
                d_ln: zeros(&[b, t, h], device)?,
                d_att: zeros(&[b, t, nh, d], device)?,
                dq: zeros(&[b, t, nh, d], device)?,
                dk: zeros(&[b, t, nkv, d], device)?,
                dv: zeros(&[b, t, nkv, d], device)?,
                d_act: zeros(&[b, t, f], device)?,
                d_gate: zeros(&[b, t, f], device)?,
                d_up: zeros(&[b, t, f], device)?,
            },
            d_logits: zeros(&[b, t, c.vocab_size], device)?,
        })
    }

    pub fn bytes(&self) -> usize {
        let l = &self.layer;
        [
            &self.d_resid,
            &self.d_resid_next,
            &l.d_resid_mid,
            &l.d_ln,
            &l.d_att,
            &l.dq,
            &l.dk,
            &l.dv,
            &l.d_act,
            &l.d_gate,
            &l.d_up,
            &self.d_logits,
        ]
        .iter()
        .map(|t| t.size_in_bytes())
        .sum()
    }
}
