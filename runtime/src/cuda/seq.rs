//! The CUDA backend's sequence ops: RoPE, causal GQA attention (forward, backward, decode),
//! KV-cache writes and row copies, on the kernels' launchers of the same names.
//!
//! Index tensors (positions, cache starts, fill levels) are range-checked on the host first so
//! a bad value is the CPU twin's error, not a NaN or a skipped row.

use half::{bf16, f16};
use kernels::attention::AttnShape;
use kernels::cudarc::driver::{CudaView, DevicePtr, DevicePtrMut};
use kernels::Elem;

use super::dev_err;
use super::util::{
    float_dispatch, gpu_of, ids_i32, ids_view, index_values, not_implemented, one_dtype, scratch,
    view, with_mut,
};
use crate::backend::{AttnArgs, AttnGrads};
use crate::ops::ranges;
use crate::{DType, Error, Result, Tensor};

/// `x` `[..., H, D]` rotated in place by the `[P, D/2]` tables at `pos` (one per token).
pub(super) fn rope(
    x: &mut Tensor,
    cos: &Tensor,
    sin: &Tensor,
    pos: &Tensor,
    inverse: bool,
) -> Result<()> {
    const OP: &str = "rope";
    let (h, d) = (x.dim(x.rank() - 2), x.dim(x.rank() - 1));
    let tokens = pos.numel();
    let p_max = cos.dim(0);
    ranges::positions(OP, &index_values(OP, pos)?, p_max)?;
    if h * d == 0 || tokens == 0 {
        return Ok(());
    }
    let gpu = gpu_of(OP, x)?;
    let conv = ids_i32(OP, pos)?;
    float_dispatch!(x.dtype(), OP, E => unsafe {
        // SAFETY: E is x's dtype; cos/sin are F32 (checked by ops); positions are i32.
        let (cv, sv) = (view::<f32>(OP, cos)?, view::<f32>(OP, sin)?);
        let pv = ids_view(OP, pos, &conv)?;
        with_mut::<E, _>(OP, x, |xv| {
            kernels::rope::rope::<E>(gpu, xv, &pv, &cv, &sv, tokens, h, d, inverse)
                .map_err(dev_err(OP))
        })
    })
}

/// The kernels' shape of a validated attention call.
fn shape(a: &AttnArgs) -> AttnShape {
    AttnShape {
        batch: a.batch,
        q_len: a.t,
        kv_len: a.s,
        n_heads: a.n_heads,
        n_kv_heads: a.n_kv_heads,
        head_dim: a.head_dim,
        q_offset: a.q_offset,
        scale: a.scale,
    }
}

/// An optional index tensor as an i32 device view.
type IdView<'a> = Option<CudaView<'a, i32>>;

/// Device copies of the optional key mask and fill levels as i32, fill levels checked as the
/// CPU backend checks them (`T <= kv_lens[b] <= S`).
struct AttnIndex {
    mask: Option<(Tensor, Option<super::CudaStorage>)>,
    lens: Option<(Tensor, Option<super::CudaStorage>)>,
}

impl AttnIndex {
    fn new(a: &AttnArgs) -> Result<Self> {
        let op = a.op;
        if let Some(l) = a.kv_lens {
            ranges::kv_lens(op, &index_values(op, l)?, a.t, a.s)?;
        }
        let conv = |t: Option<&Tensor>| -> Result<_> {
            t.map(|t| Ok((t.clone(), ids_i32(op, t)?))).transpose()
        };
        Ok(AttnIndex {
            mask: conv(a.key_mask)?,
            lens: conv(a.kv_lens)?,
        })
    }

    /// The mask and the fill levels as i32 device views.
    ///
    /// # Safety
    /// `self` must come from [`AttnIndex::new`] (the converted copies match their tensors).
    unsafe fn views(&self, op: &'static str) -> Result<(IdView<'_>, IdView<'_>)> {
        unsafe fn one<'a>(
            op: &'static str,
            x: &'a Option<(Tensor, Option<super::CudaStorage>)>,
        ) -> Result<IdView<'a>> {
            x.as_ref().map(|(t, c)| ids_view(op, t, c)).transpose()
        }
        Ok((one(op, &self.mask)?, one(op, &self.lens)?))
    }
}

fn attention_fwd_typed<E: Elem>(
    out: &mut Tensor,
    lse: Option<&mut Tensor>,
    a: &AttnArgs,
    ix: &AttnIndex,
) -> Result<()> {
    let op = a.op;
    let gpu = gpu_of(op, a.q)?;
    let sh = shape(a);
    // SAFETY: E is the one float dtype of q, k, v, out (one_dtype); lse is F32 (checked by ops);
    // mask and fill levels are i32 views.
    unsafe {
        let (qv, kv, vv) = (
            view::<E>(op, a.q)?,
            view::<E>(op, a.k)?,
            view::<E>(op, a.v)?,
        );
        let (mv, lv) = ix.views(op)?;
        let mp = mv.as_ref().map(|m| m as &dyn DevicePtr<i32>);
        let lp = lv.as_ref().map(|l| l as &dyn DevicePtr<i32>);
        with_mut::<E, _>(op, out, |o| match lse {
            Some(l) => with_mut::<f32, _>(op, l, |lse_v| {
                kernels::attention::attention_fwd::<E>(
                    gpu,
                    &sh,
                    &qv,
                    &kv,
                    &vv,
                    mp,
                    lp,
                    o,
                    Some(lse_v as &mut dyn DevicePtrMut<f32>),
                )
                .map_err(dev_err(op))
            }),
            None => {
                kernels::attention::attention_fwd::<E>(gpu, &sh, &qv, &kv, &vv, mp, lp, o, None)
                    .map_err(dev_err(op))
            }
        })
    }
}

pub(super) fn attention_fwd(
    out: &mut Tensor,
    lse: Option<&mut Tensor>,
    a: &AttnArgs,
) -> Result<()> {
    let op = a.op;
    let ix = AttnIndex::new(a)?;
    match one_dtype(op, &[out, a.q, a.k, a.v])? {
        DType::F32 => attention_fwd_typed::<f32>(out, lse, a, &ix),
        DType::BF16 => attention_fwd_typed::<bf16>(out, lse, a, &ix),
        DType::F16 => attention_fwd_typed::<f16>(out, lse, a, &ix),
        other => Err(Error::DType {
            op,
            got: other,
            msg: "expected float q, k, v".into(),
        }),
    }
}

fn attention_bwd_typed<E: Elem>(t: AttnGrads<'_>, a: &AttnArgs, ix: &AttnIndex) -> Result<()> {
    let op = a.op;
    let gpu = gpu_of(op, a.q)?;
    let sh = shape(a);
    let mut delta = scratch(op, a.q, a.batch * a.n_heads * a.t)?;
    // SAFETY: E is the one float dtype of every q/k/v-shaped tensor (one_dtype); lse and the
    // delta scratch are F32; mask and fill levels are i32 views.
    unsafe {
        let (qv, kv, vv) = (
            view::<E>(op, a.q)?,
            view::<E>(op, a.k)?,
            view::<E>(op, a.v)?,
        );
        let (ov, gv, lv) = (
            view::<E>(op, t.out)?,
            view::<E>(op, t.dout)?,
            view::<f32>(op, t.lse)?,
        );
        let (mv, kl) = ix.views(op)?;
        let mp = mv.as_ref().map(|m| m as &dyn DevicePtr<i32>);
        let kp = kl.as_ref().map(|l| l as &dyn DevicePtr<i32>);
        let mut dl = delta.view_mut::<f32>()?;
        with_mut::<E, _>(op, t.dq, |dq| {
            with_mut::<E, _>(op, t.dk, |dk| {
                with_mut::<E, _>(op, t.dv, |dv| {
                    kernels::attention::attention_bwd::<E>(
                        gpu, &sh, &qv, &kv, &vv, mp, kp, &ov, &gv, &lv, &mut dl, dq, dk, dv,
                    )
                    .map_err(dev_err(op))
                })
            })
        })
    }
}

pub(super) fn attention_bwd(t: AttnGrads<'_>, a: &AttnArgs) -> Result<()> {
    let op = a.op;
    let ix = AttnIndex::new(a)?;
    let dt = one_dtype(op, &[t.dq, t.dk, t.dv, t.dout, a.q, a.k, a.v, t.out])?;
    match dt {
        DType::F32 => attention_bwd_typed::<f32>(t, a, &ix),
        DType::BF16 => attention_bwd_typed::<bf16>(t, a, &ix),
        DType::F16 => attention_bwd_typed::<f16>(t, a, &ix),
        other => Err(Error::DType {
            op,
            got: other,
            msg: "expected float q, k, v".into(),
        }),
    }
}

/// `new` `[B, T, Hkv, D]` into `cache` `[B, S_max, Hkv, D]` at rows `starts[b]..starts[b] + T`.
pub(super) fn kv_cache_write(cache: &mut Tensor, new: &Tensor, starts: &Tensor) -> Result<()> {
    const OP: &str = "kv_cache_write";
    let (bsz, s_max, t) = (cache.dim(0), cache.dim(1), new.dim(1));
    let row: usize = cache.shape()[2..].iter().product();
    ranges::cache_rows(OP, &index_values(OP, starts)?, t, s_max)?;
    if bsz * t * row == 0 {
        return Ok(());
    }
    let gpu = gpu_of(OP, new)?;
    let conv = ids_i32(OP, starts)?;
    let dt = cache.dtype();
    if !dt.is_float() {
        return not_implemented(OP, &format!("a {dt:?} cache is"));
    }
    float_dispatch!(dt, OP, E => unsafe {
        // SAFETY: cache and new share E (checked by ops); starts are i32.
        let nv = view::<E>(OP, new)?;
        let sv = ids_view(OP, starts, &conv)?;
        with_mut::<E, _>(OP, cache, |c| {
            kernels::elementwise::kv_cache_write::<E>(gpu, c, &nv, &sv, bsz, t, s_max, row)
                .map_err(dev_err(OP))
        })
    })
}

fn copy_typed<T: kernels::cudarc::driver::DeviceRepr>(
    dst: &mut Tensor,
    at: usize,
    src: &Tensor,
) -> Result<()> {
    const OP: &str = "copy_rows";
    let n = src.numel();
    let stream = gpu_of(OP, src)?.stream().clone();
    // SAFETY: dst and src share the dtype T (checked by ops).
    unsafe {
        let sv = view::<T>(OP, src)?;
        with_mut::<T, _>(OP, dst, |d| {
            let mut rows = d.slice_mut(at..at + n);
            stream
                .memcpy_dtod(&sv, &mut rows)
                .map_err(|e| Error::Device {
                    op: OP,
                    msg: format!("{e:?}"),
                })
        })
    }
}

/// `src` into rows `dst_row..` (dim 0) of `dst`, one device-to-device copy.
pub(super) fn copy_rows(dst: &mut Tensor, dst_row: usize, src: &Tensor) -> Result<()> {
    let row: usize = dst.shape()[1..].iter().product();
    let at = dst_row * row;
    if src.numel() == 0 {
        return Ok(());
    }
    match src.dtype() {
        DType::F32 => copy_typed::<f32>(dst, at, src),
        DType::BF16 => copy_typed::<bf16>(dst, at, src),
        DType::F16 => copy_typed::<f16>(dst, at, src),
        DType::I32 => copy_typed::<i32>(dst, at, src),
        DType::I64 => copy_typed::<i64>(dst, at, src),
    }
}
