//! The `Backend` trait: one implementation per device kind (CPU here, CUDA behind `cuda`).
//!
//! Callers use the checked free functions in [`crate::ops`]; those validate shapes, dtypes and
//! devices, compute the derived sizes, and only then call the backend of the tensors' device.
//! Backend methods may therefore assume their arguments are consistent. Every layout and
//! overwrite/accumulate rule is documented on the matching `ops` function.

use crate::{Device, Error, Result, Tensor};

/// Sizes of a (batched) matmul after validation: `out[b] = alpha * op(a[b]) @ op(b[b]) + beta * out[b]`
/// with `op(a[b])` of shape `[m, k]` and `op(b[b])` of shape `[k, n]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Element stride between consecutive batch matrices of `b`; 0 when `b` is one shared matrix.
    pub b_batch_stride: usize,
}

/// Options of [`crate::ops::matmul`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulParams {
    /// Use `a` transposed: `a[b]` is stored `[k, m]`.
    pub trans_a: bool,
    /// Use `b` transposed: `b[b]` is stored `[n, k]` (the usual `x @ W^T` of a linear layer).
    pub trans_b: bool,
    pub alpha: f32,
    /// 0 overwrites `out` (its old contents, even NaN, are ignored); 1 accumulates.
    pub beta: f32,
}

impl Default for MatmulParams {
    fn default() -> Self {
        MatmulParams {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }
}

/// Inputs, sizes and options of an attention call after validation (see
/// [`crate::ops::attention_fwd`]).
#[derive(Clone, Copy, Debug)]
pub struct AttnArgs<'a> {
    /// The public op being served (for error messages).
    pub op: &'static str,
    /// `[B, T, H, D]`.
    pub q: &'a Tensor,
    /// `[B, S, Hkv, D]`, as is `v`.
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    pub batch: usize,
    /// Queries per sequence.
    pub t: usize,
    /// Key/value rows stored per sequence (`k.shape()[1]`).
    pub s: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    /// Used when `kv_lens` is `None`: every sequence has `q_offset + t` valid keys.
    pub q_offset: usize,
    /// `[B]` I32/I64: valid keys of sequence `b`; its queries sit at `kv_lens[b] - t ..`.
    pub kv_lens: Option<&'a Tensor>,
    /// `[B, S]` I32/I64: nonzero where the key may be attended (padding mask).
    pub key_mask: Option<&'a Tensor>,
}

/// The tensors of an attention backward besides the inputs in [`AttnArgs`]: the gradients it
/// writes, the output gradient, and the forward's `out` and `lse`.
pub struct AttnGrads<'t> {
    pub dq: &'t mut Tensor,
    pub dk: &'t mut Tensor,
    pub dv: &'t mut Tensor,
    pub dout: &'t Tensor,
    pub out: &'t Tensor,
    pub lse: &'t Tensor,
}

/// The tensors of an RMSNorm backward (see [`crate::ops::rmsnorm_bwd`]).
pub struct RmsNormGrads<'t> {
    pub dx: &'t mut Tensor,
    pub dw: &'t mut Tensor,
    pub dout: &'t Tensor,
    pub x: &'t Tensor,
    pub w: &'t Tensor,
    pub rstd: &'t Tensor,
    pub accumulate_dx: bool,
}

/// The rows a log-probs op reads: `logits` `[..., V]`, their `targets`, and its options (see
/// [`crate::ops::token_logprobs_fwd`]).
#[derive(Clone, Copy, Debug)]
pub struct LogprobRows<'t> {
    pub logits: &'t Tensor,
    pub targets: &'t Tensor,
    pub temperature: f32,
    pub ignore_index: Option<i64>,
}

impl<'t> LogprobRows<'t> {
    pub fn new(
        logits: &'t Tensor,
        targets: &'t Tensor,
        temperature: f32,
        ignore_index: Option<i64>,
    ) -> Self {
        LogprobRows {
            logits,
            targets,
            temperature,
            ignore_index,
        }
    }

    /// The rows of a cross-entropy (temperature 1).
    pub fn ce(logits: &'t Tensor, targets: &'t Tensor, ignore_index: i64) -> Self {
        Self::new(logits, targets, 1.0, Some(ignore_index))
    }
}

/// The tensors of one AdamW step (see [`crate::ops::adamw_step`]).
pub struct AdamWTensors<'t> {
    pub param: &'t mut Tensor,
    pub grad: &'t Tensor,
    pub m: &'t mut Tensor,
    pub v: &'t mut Tensor,
    pub copy: Option<&'t mut Tensor>,
}

/// Hyper-parameters of one AdamW step (PyTorch `torch.optim.AdamW` semantics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 1-based step number used for bias correction.
    pub step: u64,
    /// Multiplies the gradient before use (e.g. the grad-clipping coefficient); 1.0 for none.
    pub grad_scale: f32,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            step: 1,
            grad_scale: 1.0,
        }
    }
}

/// The op set every device implements. See the `ops` function of the same name for layouts.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()>;
    fn copy_rows(&self, dst: &mut Tensor, dst_row: usize, src: &Tensor) -> Result<()>;
    fn matmul(
        &self,
        out: &mut Tensor,
        a: &Tensor,
        b: &Tensor,
        dims: &MatmulDims,
        p: &MatmulParams,
    ) -> Result<()>;
    fn add(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()>;
    fn mul(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()>;
    fn scale(&self, out: &mut Tensor, x: &Tensor, s: f32) -> Result<()>;
    fn scale_inplace(&self, x: &mut Tensor, s: f32) -> Result<()>;
    fn axpy(&self, y: &mut Tensor, alpha: f32, x: &Tensor) -> Result<()>;
    fn sum(&self, x: &Tensor) -> Result<f64>;
    fn sum_squares(&self, x: &Tensor) -> Result<f64>;
    fn rmsnorm_fwd(
        &self,
        out: &mut Tensor,
        rstd: &mut Tensor,
        x: &Tensor,
        w: &Tensor,
        eps: f32,
    ) -> Result<()>;
    fn rmsnorm_bwd(&self, g: RmsNormGrads) -> Result<()>;
    fn rope(
        &self,
        x: &mut Tensor,
        cos: &Tensor,
        sin: &Tensor,
        pos: &Tensor,
        inverse: bool,
    ) -> Result<()>;
    fn attention_fwd(&self, out: &mut Tensor, lse: Option<&mut Tensor>, a: &AttnArgs)
        -> Result<()>;
    fn attention_bwd(&self, g: AttnGrads, a: &AttnArgs) -> Result<()>;
    fn kv_cache_write(&self, cache: &mut Tensor, new: &Tensor, starts: &Tensor) -> Result<()>;
    fn swiglu_fwd(&self, out: &mut Tensor, gate: &Tensor, up: &Tensor) -> Result<()>;
    fn swiglu_bwd(
        &self,
        dgate: &mut Tensor,
        dup: &mut Tensor,
        dout: &Tensor,
        gate: &Tensor,
        up: &Tensor,
    ) -> Result<()>;
    fn embedding_fwd(&self, out: &mut Tensor, ids: &Tensor, table: &Tensor) -> Result<()>;
    fn embedding_bwd(&self, dtable: &mut Tensor, dout: &Tensor, ids: &Tensor) -> Result<()>;
    fn logprobs_fwd(&self, logp: &mut Tensor, lse: &mut Tensor, r: &LogprobRows) -> Result<()>;
    /// `dlogits[n] = scale * g[n] * d logp[n] / d logits[n]` with `g = dlogp` or 1 when `None`.
    fn logprobs_bwd(
        &self,
        dlogits: &mut Tensor,
        dlogp: Option<&Tensor>,
        scale: f32,
        lse: &Tensor,
        r: &LogprobRows,
    ) -> Result<()>;
    fn softmax(&self, out: &mut Tensor, x: &Tensor, temperature: f32) -> Result<()>;
    fn adamw(&self, t: AdamWTensors, p: &AdamWParams) -> Result<()>;
}

/// The backend serving `device`.
pub fn backend_for(op: &'static str, device: &Device) -> Result<&'static dyn Backend> {
    match device {
        Device::Cpu => Ok(&crate::cpu::CpuBackend),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => crate::cuda::backend(op, *i),
        #[allow(unreachable_patterns)]
        other => Err(Error::Device {
            op,
            msg: format!("no backend for {other:?} in this build"),
        }),
    }
}
