//! [`CudaBackend`]: the runtime's `Backend` on a CUDA device, mapping each op to the `kernels`
//! crate's launcher of the same name and matmul to its cuBLASLt path.
//!
//! The checked `ops` functions have already validated shapes and devices. Kernels take one
//! element type per call, so mixed float dtypes (which the CPU backend widens) are an `Err` here,
//! as is every op without a kernel yet: both name the op and say "not implemented on CUDA".

use half::{bf16, f16};
use kernels::cudarc::driver::{CudaView, CudaViewMut};
use kernels::Gpu;

use super::{dev_err, CudaStorage};
use crate::backend::{AdamWParams, AttnArgs, Backend, MatmulDims, MatmulParams};
use crate::storage::CpuStorage;
use crate::{DType, Error, Result, Tensor};

/// The CUDA backend; the device of each call is the one its tensors live on.
pub struct CudaBackend;

fn not_implemented<T>(op: &'static str, what: &str) -> Result<T> {
    Err(Error::Device {
        op,
        msg: format!("{what} not implemented on CUDA"),
    })
}

/// The one dtype of `ts`, or the not-implemented error for a mixed-dtype call.
fn one_dtype(op: &'static str, ts: &[&Tensor]) -> Result<DType> {
    let d = ts[0].dtype();
    if ts.iter().any(|t| t.dtype() != d) {
        let all: Vec<DType> = ts.iter().map(|t| t.dtype()).collect();
        return not_implemented(op, &format!("mixed dtypes {all:?} are"));
    }
    Ok(d)
}

fn gpu_of(op: &'static str, t: &Tensor) -> Result<&'static Gpu> {
    Ok(&t.cuda_storage(op)?.0.device().gpu)
}

/// This tensor's elements as a device view of `T`.
///
/// # Safety
/// `T` must be the tensor's element type.
unsafe fn view<'a, T>(op: &'static str, t: &'a Tensor) -> Result<CudaView<'a, T>> {
    let (s, off) = t.cuda_storage(op)?;
    s.view::<T>(off, t.numel())
}

/// Runs `f` on this (uniquely held) tensor's elements as a mutable device view of `T`.
///
/// # Safety
/// `T` must be the tensor's element type.
unsafe fn with_mut<T, R>(
    op: &'static str,
    t: &mut Tensor,
    f: impl FnOnce(&mut CudaViewMut<'_, T>) -> Result<R>,
) -> Result<R> {
    let n = t.numel();
    let (s, off) = t.cuda_storage_mut(op)?;
    let mut all = s.view_mut::<T>()?;
    let mut sub = all.slice_mut(off..off + n);
    f(&mut sub)
}

/// Expands `$body` once per float dtype with `$E` bound to its element type.
macro_rules! float_dispatch {
    ($dt:expr, $op:expr, $E:ident => $body:expr) => {
        match $dt {
            DType::F32 => {
                type $E = f32;
                $body
            }
            DType::BF16 => {
                type $E = bf16;
                $body
            }
            DType::F16 => {
                type $E = f16;
                $body
            }
            other => Err(Error::DType {
                op: $op,
                got: other,
                msg: "expected a float tensor".into(),
            }),
        }
    };
}

/// A fresh f32 device buffer (reduction scratch and results).
fn scratch(op: &'static str, like: &Tensor, len: usize) -> Result<CudaStorage> {
    CudaStorage::zeros(like.cuda_storage(op)?.0.device().ordinal, DType::F32, len)
}

fn read_scalar(op: &'static str, s: &CudaStorage) -> Result<f64> {
    match s.to_cpu()? {
        CpuStorage::F32(v) if !v.is_empty() => Ok(v[0] as f64),
        other => Err(Error::Device {
            op,
            msg: format!("reduction result came back as {:?}", other.dtype()),
        }),
    }
}

/// sum (`square = false`) or sum of squares of `x`'s elements, f32 accumulation on the device.
fn reduce(op: &'static str, x: &Tensor, square: bool) -> Result<f64> {
    let n = x.numel();
    if n == 0 {
        return Ok(0.0);
    }
    let gpu = gpu_of(op, x)?;
    let mut sc = scratch(op, x, kernels::reduce::partial_blocks(n))?;
    let mut out = scratch(op, x, 1)?;
    float_dispatch!(x.dtype(), op, E => {
        // SAFETY: dtypes match the views (dispatch above; scratch and out are F32).
        unsafe {
            let xv = view::<E>(op, x)?;
            let mut sv = sc.view_mut::<f32>()?;
            let mut ov = out.view_mut::<f32>()?;
            if square {
                kernels::reduce::global_norm::<E>(gpu, &[&xv], &mut sv, &mut ov)
            } else {
                kernels::reduce::sum::<E>(gpu, &xv, n, &mut sv, &mut ov)
            }
            .map_err(dev_err(op))
        }
    })?;
    let r = read_scalar(op, &out)?;
    // global_norm returns the root; square it back.
    Ok(if square { r * r } else { r })
}

/// A device copy of integer ids as i32 (the kernels' index type).
fn ids_i32(op: &'static str, ids: &Tensor) -> Result<Option<CudaStorage>> {
    match ids.dtype() {
        DType::I32 => Ok(None),
        DType::I64 => {
            let gpu = gpu_of(op, ids)?;
            let mut s = CudaStorage::zeros(
                ids.cuda_storage(op)?.0.device().ordinal,
                DType::I32,
                ids.numel(),
            )?;
            // SAFETY: ids are I64, the new buffer I32.
            unsafe {
                let iv = view::<i64>(op, ids)?;
                let mut ov = s.view_mut::<i32>()?;
                kernels::cast::cast::<i64, i32>(gpu, &iv, &mut ov, ids.numel())
                    .map_err(dev_err(op))?;
            }
            Ok(Some(s))
        }
        other => Err(Error::DType {
            op,
            got: other,
            msg: "expected I32 or I64 ids".into(),
        }),
    }
}

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

    fn copy_rows(&self, _dst: &mut Tensor, _dst_row: usize, _src: &Tensor) -> Result<()> {
        not_implemented("copy_rows", "copy_rows is")
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

    fn rmsnorm_bwd(
        &self,
        dx: &mut Tensor,
        dw: &mut Tensor,
        dout: &Tensor,
        x: &Tensor,
        w: &Tensor,
        rstd: &Tensor,
        accumulate_dx: bool,
    ) -> Result<()> {
        const OP: &str = "rmsnorm_bwd";
        let gpu = gpu_of(OP, x)?;
        let d = w.numel();
        let rows = x.numel().checked_div(d).unwrap_or(0);
        float_dispatch!(one_dtype(OP, &[dx, dout, x, w])?, OP, E => unsafe {
            // SAFETY: one dtype for dx, dout, x, w (E); dw and rstd are F32 (checked by ops).
            let (xv, wv, dyv) = (view::<E>(OP, x)?, view::<E>(OP, w)?, view::<E>(OP, dout)?);
            let rv = view::<f32>(OP, rstd)?;
            with_mut::<E, _>(OP, dx, |dxv| {
                with_mut::<f32, _>(OP, dw, |dwv| {
                    kernels::rmsnorm::rmsnorm_bwd::<E>(
                        gpu, &xv, &wv, &rv, &dyv, dxv, dwv, rows, d, accumulate_dx,
                    )
                    .map_err(dev_err(OP))
                })
            })
        })
    }

    fn rope(
        &self,
        _x: &mut Tensor,
        _cos: &Tensor,
        _sin: &Tensor,
        _pos: &Tensor,
        _inverse: bool,
    ) -> Result<()> {
        not_implemented("rope", "rope through the runtime's tables is")
    }

    fn attention_fwd(
        &self,
        _out: &mut Tensor,
        _lse: Option<&mut Tensor>,
        _q: &Tensor,
        _k: &Tensor,
        _v: &Tensor,
        a: &AttnArgs,
    ) -> Result<()> {
        not_implemented(a.op, "attention_fwd is")
    }

    fn attention_bwd(
        &self,
        _dq: &mut Tensor,
        _dk: &mut Tensor,
        _dv: &mut Tensor,
        _dout: &Tensor,
        _q: &Tensor,
        _k: &Tensor,
        _v: &Tensor,
        _out: &Tensor,
        _lse: &Tensor,
        a: &AttnArgs,
    ) -> Result<()> {
        not_implemented(a.op, "attention_bwd is")
    }

    fn kv_cache_write(&self, _cache: &mut Tensor, _new: &Tensor, _starts: &Tensor) -> Result<()> {
        not_implemented("kv_cache_write", "kv_cache_write is")
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
            let iv = match &converted {
                Some(s) => s.view::<i32>(0, n)?,
                None => view::<i32>(OP, ids)?,
            };
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
            let iv = match &converted {
                Some(s) => s.view::<i32>(0, n)?,
                None => view::<i32>(OP, ids)?,
            };
            let dv = view::<E>(OP, dout)?;
            with_mut::<f32, _>(OP, dtable, |o| {
                kernels::embedding::embedding_bwd::<E>(gpu, &iv, &dv, o, n, vocab, d)
                    .map_err(dev_err(OP))
            })
        })
    }

    fn logprobs_fwd(
        &self,
        _logp: &mut Tensor,
        _lse: &mut Tensor,
        _logits: &Tensor,
        _targets: &Tensor,
        _temperature: f32,
        _ignore_index: Option<i64>,
    ) -> Result<()> {
        not_implemented("logprobs_fwd", "logprobs_fwd is")
    }

    fn logprobs_bwd(
        &self,
        _dlogits: &mut Tensor,
        _dlogp: Option<&Tensor>,
        _scale: f32,
        _logits: &Tensor,
        _lse: &Tensor,
        _targets: &Tensor,
        _temperature: f32,
        _ignore_index: Option<i64>,
    ) -> Result<()> {
        not_implemented("logprobs_bwd", "logprobs_bwd is")
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

    fn adamw(
        &self,
        _param: &mut Tensor,
        _grad: &Tensor,
        _m: &mut Tensor,
        _v: &mut Tensor,
        _copy: Option<&mut Tensor>,
        _p: &AdamWParams,
    ) -> Result<()> {
        not_implemented("adamw", "adamw is")
    }
}
