//! Dtype conversions and row copies on host memory.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::storage::CpuStorage;
use crate::{Element, Result, Tensor};

const CHUNK: usize = 1 << 14;

pub(crate) fn bf16_to_f32_vec(src: &[bf16]) -> Vec<f32> {
    let mut out = vec![0.0f32; src.len()];
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| s.convert_to_f32_slice(o));
    out
}

pub(crate) fn f32_to_bf16_slice(src: &[f32], dst: &mut [bf16]) {
    let bits: &mut [u16] = bytemuck::cast_slice_mut(dst);
    bits.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| super::vec::f32_to_bf16_bits(s, o));
}

fn convert<I: Element, O: Element>(src: &[I], dst: &mut [O]) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| {
            for (o, s) in o.iter_mut().zip(s) {
                *o = O::from_f64(s.to_f64());
            }
        });
}

fn cast_from<I: Element>(out: &mut Tensor, src: &[I]) -> Result<()> {
    use crate::DType::*;
    match out.dtype() {
        F32 => {
            let o = out.as_mut_slice::<f32>()?;
            // `I::DTYPE` pins `I`, so these casts are identity reinterpretations.
            match I::DTYPE {
                BF16 => {
                    let s: &[bf16] = bytemuck::cast_slice(src);
                    o.par_chunks_mut(CHUNK)
                        .zip(s.par_chunks(CHUNK))
                        .for_each(|(o, s)| s.convert_to_f32_slice(o));
                }
                F16 => {
                    let s: &[f16] = bytemuck::cast_slice(src);
                    o.par_chunks_mut(CHUNK)
                        .zip(s.par_chunks(CHUNK))
                        .for_each(|(o, s)| s.convert_to_f32_slice(o));
                }
                _ => convert(src, o),
            }
        }
        BF16 => {
            let o = out.as_mut_slice::<bf16>()?;
            if I::DTYPE == F32 {
                f32_to_bf16_slice(bytemuck::cast_slice(src), o)
            } else {
                convert(src, o)
            }
        }
        F16 => convert(src, out.as_mut_slice::<f16>()?),
        I32 => convert(src, out.as_mut_slice::<i32>()?),
        I64 => convert(src, out.as_mut_slice::<i64>()?),
    }
    Ok(())
}

pub(crate) fn cast(out: &mut Tensor, x: &Tensor) -> Result<()> {
    let r = x.offset()..x.offset() + x.numel();
    match x.cpu_storage("cast")? {
        CpuStorage::F32(v) => cast_from(out, &v[r]),
        CpuStorage::BF16(v) => cast_from(out, &v[r]),
        CpuStorage::F16(v) => cast_from(out, &v[r]),
        CpuStorage::I32(v) => cast_from(out, &v[r]),
        CpuStorage::I64(v) => cast_from(out, &v[r]),
    }
}

fn copy_typed<T: Element>(dst: &mut Tensor, at: usize, src: &[T]) -> Result<()> {
    let d = dst.as_mut_slice::<T>()?;
    d[at..at + src.len()].copy_from_slice(src);
    Ok(())
}

pub(crate) fn copy_rows(dst: &mut Tensor, dst_row: usize, src: &Tensor) -> Result<()> {
    let row: usize = dst.shape()[1..].iter().product();
    let at = dst_row * row;
    let r = src.offset()..src.offset() + src.numel();
    match src.cpu_storage("copy_rows")? {
        CpuStorage::F32(v) => copy_typed(dst, at, &v[r]),
        CpuStorage::BF16(v) => copy_typed(dst, at, &v[r]),
        CpuStorage::F16(v) => copy_typed(dst, at, &v[r]),
        CpuStorage::I32(v) => copy_typed(dst, at, &v[r]),
        CpuStorage::I64(v) => copy_typed(dst, at, &v[r]),
    }
}

/// Copies `new[b]` (rows of `row` elements, `t` of them) to `cache[b]` at row `starts[b]`.
pub(crate) fn kv_cache_write(cache: &mut Tensor, new: &Tensor, starts: &Tensor) -> Result<()> {
    let (bsz, s_max, t) = (cache.dim(0), cache.dim(1), new.dim(1));
    let row: usize = cache.shape()[2..].iter().product();
    let starts = starts.i64_cow("kv_cache_write")?;
    crate::ops::ranges::cache_rows("kv_cache_write", &starts, t, s_max)?;
    for (b, &st) in starts.iter().enumerate().take(bsz) {
        let src = new.narrow(b, 1)?;
        let at = (b * s_max + st as usize) * row;
        let r = src.offset()..src.offset() + src.numel();
        match src.cpu_storage("kv_cache_write")? {
            CpuStorage::F32(v) => copy_typed(cache, at, &v[r])?,
            CpuStorage::BF16(v) => copy_typed(cache, at, &v[r])?,
            CpuStorage::F16(v) => copy_typed(cache, at, &v[r])?,
            CpuStorage::I32(v) => copy_typed(cache, at, &v[r])?,
            CpuStorage::I64(v) => copy_typed(cache, at, &v[r])?,
        }
    }
    Ok(())
}
