//! Shared plumbing of the CUDA backend's ops: typed device views of tensors, dtype dispatch,
//! scratch buffers, index conversion and the host-side index checks that keep the CUDA ops'
//! errors identical to the CPU twins'.

use half::{bf16, f16};
use kernels::cudarc::driver::{CudaView, CudaViewMut};
use kernels::Gpu;

use super::{dev_err, CudaStorage};
use crate::storage::CpuStorage;
use crate::{DType, Error, Result, Tensor};

pub(super) fn not_implemented<T>(op: &'static str, what: &str) -> Result<T> {
    Err(Error::Device {
        op,
        msg: format!("{what} not implemented on CUDA"),
    })
}

/// The one dtype of `ts`, or the not-implemented error for a mixed-dtype call.
pub(super) fn one_dtype(op: &'static str, ts: &[&Tensor]) -> Result<DType> {
    let d = ts[0].dtype();
    if ts.iter().any(|t| t.dtype() != d) {
        let all: Vec<DType> = ts.iter().map(|t| t.dtype()).collect();
        return not_implemented(op, &format!("mixed dtypes {all:?} are"));
    }
    Ok(d)
}

pub(super) fn gpu_of(op: &'static str, t: &Tensor) -> Result<&'static Gpu> {
    Ok(&t.cuda_storage(op)?.0.device().gpu)
}

/// This tensor's elements as a device view of `T`.
///
/// # Safety
/// `T` must be the tensor's element type.
pub(super) unsafe fn view<'a, T>(op: &'static str, t: &'a Tensor) -> Result<CudaView<'a, T>> {
    let (s, off) = t.cuda_storage(op)?;
    s.view::<T>(off, t.numel())
}

/// Runs `f` on this (uniquely held) tensor's elements as a mutable device view of `T`.
///
/// # Safety
/// `T` must be the tensor's element type.
pub(super) unsafe fn with_mut<T, R>(
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
pub(super) use float_dispatch;

/// A fresh f32 device buffer (reduction scratch and results).
pub(super) fn scratch(op: &'static str, like: &Tensor, len: usize) -> Result<CudaStorage> {
    CudaStorage::zeros(like.cuda_storage(op)?.0.device().ordinal, DType::F32, len)
}

pub(super) fn read_scalar(op: &'static str, s: &CudaStorage) -> Result<f64> {
    match s.to_cpu()? {
        CpuStorage::F32(v) if !v.is_empty() => Ok(v[0] as f64),
        other => Err(Error::Device {
            op,
            msg: format!("reduction result came back as {:?}", other.dtype()),
        }),
    }
}

/// sum (`square = false`) or sum of squares of `x`'s elements, f32 accumulation on the device.
pub(super) fn reduce(op: &'static str, x: &Tensor, square: bool) -> Result<f64> {
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
pub(super) fn ids_i32(op: &'static str, ids: &Tensor) -> Result<Option<CudaStorage>> {
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

/// `ids` as an i32 device view: the tensor itself when I32, else its converted copy `conv`
/// (from [`ids_i32`]).
///
/// # Safety
/// `conv` must be `ids_i32(op, ids)`'s result for this `ids`.
pub(super) unsafe fn ids_view<'a>(
    op: &'static str,
    ids: &'a Tensor,
    conv: &'a Option<CudaStorage>,
) -> Result<CudaView<'a, i32>> {
    match conv {
        Some(s) => s.view::<i32>(0, ids.numel()),
        None => view::<i32>(op, ids),
    }
}

/// An index tensor's values on the host. The CPU twins reject out-of-range positions, starts,
/// fill levels and targets with an error, while the kernels can only write NaN or skip; this
/// small download (one sync) keeps the two backends' errors the same.
pub(super) fn index_values(op: &'static str, t: &Tensor) -> Result<Vec<i64>> {
    if !t.dtype().is_int() {
        return Err(Error::DType {
            op,
            got: t.dtype(),
            msg: "expected an I32 or I64 index tensor".into(),
        });
    }
    t.to_vec::<i64>()
}
