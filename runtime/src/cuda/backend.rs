//! [`CudaBackend`]: the runtime's `Backend` on a CUDA device, mapping each op to the `kernels`
//! crate's launcher of the same name and matmul to its cuBLASLt path.
//!
//! The checked `ops` functions have already validated shapes and devices. Kernels take one
//! element type per call, so mixed float dtypes (which the CPU backend widens) are an `Err`
//! naming the op and saying "not implemented on CUDA". Sequence ops live in `seq`, log-probs
//! and AdamW in `loss_optim`.

use half::{bf16, f16};

use super::util::{
    float_dispatch, gpu_of, ids_i32, ids_view, not_implemented, one_dtype, reduce, view, with_mut,
};
use super::{dev_err, loss_optim, seq};
use crate::backend::{
    AdamWParams, AdamWTensors, AttnArgs, AttnGrads, Backend, LogprobRows, MatmulDims, MatmulParams,
    RmsNormGrads,
};
use crate::{DType, Error, Result, Tensor};

/// The CUDA backend; the device of each call is the one its tensors live on.
pub struct CudaBackend;

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        const OP: &str = "cast";
        let gpu = gpu_of(OP, x)?;
        let n = x.numel();
        if out.dtype() == x.dtype() {
            let stream = gpu.stream().clone();
            macro_rules! copy {
                ($T:ty) => {
                    // SAFETY: both tensors hold $T.
                    unsafe {
                        let xv = view::<$T>(OP, x)?;
                        with_mut::<$T, _>(OP, out, |o| {
                            stream.memcpy_dtod(&xv, o).map_err(|e| Error::Device {
                                op: OP,
                                msg: format!("{e:?}"),
                            })
                        })
                    }
                };
            }
            return match x.dtype() {
                DType::F32 => copy!(f32),
                DType::BF16 => copy!(bf16),
                DType::F16 => copy!(f16),
                DType::I32 => copy!(i32),
                DType::I64 => copy!(i64),
            };
        }
        macro_rules! cast {
            ($I:ty, $O:ty) => {
                // SAFETY: the views match the tensors' dtypes (matched below).
                unsafe {
                    let xv = view::<$I>(OP, x)?;
                    with_mut::<$O, _>(OP, out, |o| {
                        kernels::cast::cast::<$I, $O>(gpu, &xv, o, n).map_err(dev_err(OP))
                    })
                }
            };
        }
        match (x.dtype(), out.dtype()) {
            (DType::F32, DType::BF16) => cast!(f32, bf16),
            (DType::F32, DType::F16) => cast!(f32, f16),
            (DType::BF16, DType::F32) => cast!(bf16, f32),
            (DType::BF16, DType::F16) => cast!(bf16, f16),
            (DType::F16, DType::F32) => cast!(f16, f32),
            (DType::F16, DType::BF16) => cast!(f16, bf16),
            (DType::I64, DType::I32) => cast!(i64, i32),
            (a, b) => not_implemented(OP, &format!("cast {a:?} -> {b:?} is")),
        }
    }

    fn copy_rows(&self, dst: &mut Tensor, dst_row: usize, src: &Tensor) -> Result<()> {
        seq::copy_rows(dst, dst_row, src)
    }

    fn matmul(
        &self,
        out: &mut Tensor,
        a: &Tensor,
        b: &Tensor,
        dims: &MatmulDims,
        p: &MatmulParams,
    ) -> Result<()> {
        const OP: &str = "matmul";
        let din = one_dtype(OP, &[a, b])?;
        let dev = a.cuda_storage(OP)?.0.device();
        let spec = kernels::gemm::GemmSpec {
            batch: dims.batch,
            m: dims.m,
            n: dims.n,
            k: dims.k,
            trans_a: p.trans_a,
            trans_b: p.trans_b,
            alpha: p.alpha,
            beta: p.beta,
            b_batch_stride: dims.b_batch_stride,
        };
        macro_rules! gemm {
            ($I:ty, $O:ty) => {
                // SAFETY: the views match the tensors' dtypes (matched below).
                unsafe {
                    let av = view::<$I>(OP, a)?;
                    let bv = view::<$I>(OP, b)?;
                    with_mut::<$O, _>(OP, out, |o| {
                        dev.gemm
                            .matmul::<$I, $O>(&spec, &av, &bv, o)
                            .map_err(dev_err(OP))
                    })
                }
            };
        }
        match (din, out.dtype()) {
            (DType::F32, DType::F32) => gemm!(f32, f32),
            (DType::BF16, DType::F32) => gemm!(bf16, f32),
            (DType::BF16, DType::BF16) => gemm!(bf16, bf16),
            (DType::F16, DType::F32) => gemm!(f16, f32),
            (DType::F16, DType::F16) => gemm!(f16, f16),
            (i, o) => not_implemented(OP, &format!("{i:?} inputs with a {o:?} output are")),
        }
    }

    fn add(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
        const OP: &str = "add";
        let (gpu, n) = (gpu_of(OP, a)?, a.numel());
        float_dispatch!(one_dtype(OP, &[out, a, b])?, OP, E => unsafe {
            // SAFETY: one dtype for all three, E its element type.
            let (av, bv) = (view::<E>(OP, a)?, view::<E>(OP, b)?);
            with_mut::<E, _>(OP, out, |o| {
                kernels::elementwise::add::<E>(gpu, &av, &bv, o, n).map_err(dev_err(OP))
            })
        })
    }

    fn mul(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
        const OP: &str = "mul";
        let (gpu, n) = (gpu_of(OP, a)?, a.numel());
        float_dispatch!(one_dtype(OP, &[out, a, b])?, OP, E => unsafe {
            // SAFETY: one dtype for all three, E its element type.
            let (av, bv) = (view::<E>(OP, a)?, view::<E>(OP, b)?);
            with_mut::<E, _>(OP, out, |o| {
                kernels::elementwise::mul_elem::<E>(gpu, &av, &bv, o, n).map_err(dev_err(OP))
            })
        })
    }

    fn scale(&self, out: &mut Tensor, x: &Tensor, s: f32) -> Result<()> {
        const OP: &str = "scale";
        let (gpu, n) = (gpu_of(OP, x)?, x.numel());
        float_dispatch!(one_dtype(OP, &[out, x])?, OP, E => unsafe {
            // SAFETY: one dtype for both, E its element type.
            let xv = view::<E>(OP, x)?;
            with_mut::<E, _>(OP, out, |o| {
                kernels::elementwise::scale::<E>(gpu, &xv, o, s, n).map_err(dev_err(OP))
            })
        })
    }

    fn scale_inplace(&self, x: &mut Tensor, s: f32) -> Result<()> {
        const OP: &str = "scale_inplace";
        let (gpu, n) = (gpu_of(OP, x)?, x.numel());
        float_dispatch!(x.dtype(), OP, E => unsafe {
            // SAFETY: E is x's element type.
            with_mut::<E, _>(OP, x, |o| {
                kernels::elementwise::scale_inplace::<E>(gpu, o, s, n).map_err(dev_err(OP))
            })
        })
    }

    fn axpy(&self, y: &mut Tensor, alpha: f32, x: &Tensor) -> Result<()> {
        const OP: &str = "axpy";
        let (gpu, n) = (gpu_of(OP, x)?, x.numel());
        float_dispatch!(one_dtype(OP, &[y, x])?, OP, E => unsafe {
            // SAFETY: one dtype for both, E its element type.
            let xv = view::<E>(OP, x)?;
            with_mut::<E, _>(OP, y, |o| {
                kernels::elementwise::axpy::<E>(gpu, o, alpha, &xv, n).map_err(dev_err(OP))
            })
        })
    }

    fn sum(&self, x: &Tensor) -> Result<f64> {
        reduce("sum", x, false)
    }

    fn sum_squares(&self, x: &Tensor) -> Result<f64> {
        reduce("sum_squares", x, true)
    }

    fn rmsnorm_fwd(
        &self,
        out: &mut Tensor,
        rstd: &mut Tensor,
        x: &Tensor,
        w: &Tensor,
        eps: f32,
    ) -> Result<()> {
        const OP: &str = "rmsnorm_fwd";
        let gpu = gpu_of(OP, x)?;
        let d = w.numel();
        let rows = x.numel().checked_div(d).unwrap_or(0);
        float_dispatch!(one_dtype(OP, &[out, x, w])?, OP, E => unsafe {
            // SAFETY: one dtype for out, x, w (E); rstd is F32 (checked by ops).
            let (xv, wv) = (view::<E>(OP, x)?, view::<E>(OP, w)?);
            with_mut::<E, _>(OP, out, |o| {
                with_mut::<f32, _>(OP, rstd, |r| {
                    kernels::rmsnorm::rmsnorm_fwd::<E>(gpu, &xv, &wv, o, r, rows, d, eps)
                        .map_err(dev_err(OP))
                })
            })
        })
    }

    fn rmsnorm_bwd(&self, g: RmsNormGrads) -> Result<()> {
        const OP: &str = "rmsnorm_bwd";
        let gpu = gpu_of(OP, g.x)?;
        let d = g.w.numel();
        let rows = g.x.numel().checked_div(d).unwrap_or(0);
        float_dispatch!(one_dtype(OP, &[g.dx, g.dout, g.x, g.w])?, OP, E => unsafe {
            // SAFETY: one dtype for dx, dout, x, w (E); dw and rstd are F32 (checked by ops).
            let (xv, wv) = (view::<E>(OP, g.x)?, view::<E>(OP, g.w)?);
            let (dyv, rv) = (view::<E>(OP, g.dout)?, view::<f32>(OP, g.rstd)?);
            with_mut::<E, _>(OP, g.dx, |dxv| {
                with_mut::<f32, _>(OP, g.dw, |dwv| {
                    kernels::rmsnorm::rmsnorm_bwd::<E>(
                        gpu, &xv, &wv, &rv, &dyv, dxv, dwv, rows, d, g.accumulate_dx,
                    )
                    .map_err(dev_err(OP))
                })
            })
        })
    }

    fn rope(
        &self,
        x: &mut Tensor,
        cos: &Tensor,
        sin: &Tensor,
        pos: &Tensor,
        inverse: bool,
    ) -> Result<()> {
        seq::rope(x, cos, sin, pos, inverse)
    }

    fn attention_fwd(
        &self,
        out: &mut Tensor,
        lse: Option<&mut Tensor>,
        a: &AttnArgs,
    ) -> Result<()> {
        seq::attention_fwd(out, lse, a)
    }

    fn attention_bwd(&self, g: AttnGrads, a: &AttnArgs) -> Result<()> {
        seq::attention_bwd(g, a)
    }

    fn kv_cache_write(&self, cache: &mut Tensor, new: &Tensor, starts: &Tensor) -> Result<()> {
        seq::kv_cache_write(cache, new, starts)
    }

    fn swiglu_fwd(&self, out: &mut Tensor, gate: &Tensor, up: &Tensor) -> Result<()> {
        const OP: &str = "swiglu_fwd";
        let (gpu, n) = (gpu_of(OP, gate)?, gate.numel());
        float_dispatch!(one_dtype(OP, &[out, gate, up])?, OP, E => unsafe {
            // SAFETY: one dtype for all three, E its element type.
            let (gv, uv) = (view::<E>(OP, gate)?, view::<E>(OP, up)?);
            with_mut::<E, _>(OP, out, |o| {
                kernels::swiglu::swiglu_fwd::<E>(gpu, &gv, &uv, o, n).map_err(dev_err(OP))
            })
        })
    }

    fn swiglu_bwd(
        &self,
        dgate: &mut Tensor,
        dup: &mut Tensor,
        dout: &Tensor,
        gate: &Tensor,
        up: &Tensor,
    ) -> Result<()> {
        const OP: &str = "swiglu_bwd";
        let (gpu, n) = (gpu_of(OP, gate)?, gate.numel());
        float_dispatch!(one_dtype(OP, &[dgate, dup, dout, gate, up])?, OP, E => unsafe {
            // SAFETY: one dtype for all five, E its element type.
            let (gv, uv, dv) = (view::<E>(OP, gate)?, view::<E>(OP, up)?, view::<E>(OP, dout)?);
            with_mut::<E, _>(OP, dgate, |dg| {
                with_mut::<E, _>(OP, dup, |du| {
                    kernels::swiglu::swiglu_bwd::<E>(gpu, &gv, &uv, &dv, dg, du, n)
                        .map_err(dev_err(OP))
                })
            })
        })
    }

    fn embedding_fwd(&self, out: &mut Tensor, ids: &Tensor, table: &Tensor) -> Result<()> {
        const OP: &str = "embedding_fwd";
        let gpu = gpu_of(OP, table)?;
        let (n, vocab, d) = (ids.numel(), table.dim(0), table.dim(1));
        let converted = ids_i32(OP, ids)?;
        float_dispatch!(one_dtype(OP, &[out, table])?, OP, E => unsafe {
            // SAFETY: out and table share E; ids are I32 (or converted to I32).
            let iv = ids_view(OP, ids, &converted)?;
            let tv = view::<E>(OP, table)?;
            with_mut::<E, _>(OP, out, |o| {
                kernels::embedding::embedding_fwd::<E>(gpu, &iv, &tv, o, n, vocab, d)
                    .map_err(dev_err(OP))
            })
        })
    }

    fn embedding_bwd(&self, dtable: &mut Tensor, dout: &Tensor, ids: &Tensor) -> Result<()> {
        const OP: &str = "embedding_bwd";
        let gpu = gpu_of(OP, dout)?;
        let (n, vocab, d) = (ids.numel(), dtable.dim(0), dtable.dim(1));
        let converted = ids_i32(OP, ids)?;
        float_dispatch!(dout.dtype(), OP, E => unsafe {
            // SAFETY: dout holds E; dtable is F32 (checked by ops); ids are I32.
            let iv = ids_view(OP, ids, &converted)?;
            let dv = view::<E>(OP, dout)?;
            with_mut::<f32, _>(OP, dtable, |o| {
                kernels::embedding::embedding_bwd::<E>(gpu, &iv, &dv, o, n, vocab, d)
                    .map_err(dev_err(OP))
            })
        })
    }

    fn logprobs_fwd(&self, logp: &mut Tensor, lse: &mut Tensor, r: &LogprobRows) -> Result<()> {
        loss_optim::logprobs_fwd(logp, lse, r)
    }

    fn logprobs_bwd(
        &self,
        dlogits: &mut Tensor,
        dlogp: Option<&Tensor>,
        scale: f32,
        lse: &Tensor,
        r: &LogprobRows,
    ) -> Result<()> {
        loss_optim::logprobs_bwd(dlogits, dlogp, scale, lse, r)
    }

    fn softmax(&self, out: &mut Tensor, x: &Tensor, temperature: f32) -> Result<()> {
        const OP: &str = "softmax";
        let gpu = gpu_of(OP, x)?;
        let vocab = x.dim(x.rank() - 1);
        let rows = x.numel().checked_div(vocab).unwrap_or(0);
        float_dispatch!(one_dtype(OP, &[out, x])?, OP, E => unsafe {
            // SAFETY: one dtype for both, E its element type.
            let xv = view::<E>(OP, x)?;
            with_mut::<E, _>(OP, out, |o| {
                kernels::logprobs::softmax::<E>(gpu, &xv, o, rows, vocab, temperature)
                    .map_err(dev_err(OP))
            })
        })
    }

    fn adamw(&self, t: AdamWTensors, p: &AdamWParams) -> Result<()> {
        loss_optim::adamw(t, p)
    }
}
