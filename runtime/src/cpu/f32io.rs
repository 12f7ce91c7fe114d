//! Float tensors read and written as f32 one piece at a time.
//!
//! BF16/F16 ops used to convert whole tensors to f32 (and back) around every call; a gather
//! like `embedding_fwd` then paid for the whole table. These views convert only the rows or
//! chunks a task touches, into a per-task buffer, with the same per-element conversions, so
//! results stay bit-identical.

use std::ops::Range;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::iter::Either;
use rayon::prelude::*;

use crate::storage::CpuStorage;
use crate::{DType, Error, Result, Tensor};

/// A float tensor's elements, readable as f32 by range.
#[derive(Clone, Copy)]
pub(crate) enum F32In<'a> {
    F32(&'a [f32]),
    BF16(&'a [bf16]),
    F16(&'a [f16]),
}

impl<'a> F32In<'a> {
    pub(crate) fn of(t: &'a Tensor, op: &'static str) -> Result<Self> {
        let r = t.offset()..t.offset() + t.numel();
        match t.cpu_storage(op)? {
            CpuStorage::F32(v) => Ok(Self::F32(&v[r])),
            CpuStorage::BF16(v) => Ok(Self::BF16(&v[r])),
            CpuStorage::F16(v) => Ok(Self::F16(&v[r])),
            _ => Err(Error::DType {
                op,
                got: t.dtype(),
                msg: "expected a float tensor".into(),
            }),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::BF16(v) => v.len(),
            Self::F16(v) => v.len(),
        }
    }

    /// Writes elements `r` as f32 to `dst` (same length).
    pub(crate) fn read_into(&self, r: Range<usize>, dst: &mut [f32]) {
        match *self {
            Self::F32(v) => dst.copy_from_slice(&v[r]),
            Self::BF16(v) => v[r].convert_to_f32_slice(dst),
            Self::F16(v) => v[r].convert_to_f32_slice(dst),
        }
    }

    /// Elements `r` as f32: borrowed for F32, otherwise converted into `buf`.
    pub(crate) fn get<'s>(&'s self, r: Range<usize>, buf: &'s mut Vec<f32>) -> &'s [f32] {
        match *self {
            Self::F32(v) => &v[r],
            Self::BF16(v) => {
                buf.resize(r.len(), 0.0);
                v[r].convert_to_f32_slice(buf);
                buf
            }
            Self::F16(v) => {
                buf.resize(r.len(), 0.0);
                v[r].convert_to_f32_slice(buf);
                buf
            }
        }
    }
}

/// A float output (or a disjoint piece of one), writable through an f32 slice.
pub(crate) enum F32Out<'a> {
    F32(&'a mut [f32]),
    BF16(&'a mut [bf16]),
    F16(&'a mut [f16]),
}

impl<'a> F32Out<'a> {
    pub(crate) fn of(t: &'a mut Tensor, op: &'static str) -> Result<Self> {
        if !t.is_unique() {
            return Err(Error::SharedStorage {
                op,
                shape: t.shape().to_vec(),
            });
        }
        match t.dtype() {
            DType::F32 => Ok(Self::F32(t.as_mut_slice()?)),
            DType::BF16 => Ok(Self::BF16(t.as_mut_slice()?)),
            DType::F16 => Ok(Self::F16(t.as_mut_slice()?)),
            other => Err(Error::DType {
                op,
                got: other,
                msg: "expected a float output tensor".into(),
            }),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::BF16(v) => v.len(),
            Self::F16(v) => v.len(),
        }
    }

    /// Disjoint pieces of `n` elements (the last may be shorter), in order.
    pub(crate) fn par_chunks(
        self,
        n: usize,
    ) -> impl IndexedParallelIterator<Item = F32Out<'a>> + 'a {
        match self {
            Self::F32(v) => Either::Left(v.par_chunks_mut(n).map(F32Out::F32)),
            Self::BF16(v) => Either::Right(Either::Left(v.par_chunks_mut(n).map(F32Out::BF16))),
            Self::F16(v) => Either::Right(Either::Right(v.par_chunks_mut(n).map(F32Out::F16))),
        }
    }

    /// Runs `f` on these elements as f32, through `buf` for BF16/F16 (loaded first only when
    /// `load`, e.g. to accumulate) and rounded back once afterwards.
    pub(crate) fn with<R>(
        self,
        buf: &mut Vec<f32>,
        load: bool,
        f: impl FnOnce(&mut [f32]) -> R,
    ) -> R {
        match self {
            Self::F32(v) => f(v),
            Self::BF16(v) => {
                buf.clear();
                buf.resize(v.len(), 0.0);
                if load {
                    v.convert_to_f32_slice(buf);
                }
                let r = f(buf);
                super::vec::f32_to_bf16_bits(buf, bytemuck::cast_slice_mut(v));
                r
            }
            Self::F16(v) => {
                buf.clear();
                buf.resize(v.len(), 0.0);
                if load {
                    v.convert_to_f32_slice(buf);
                }
                let r = f(buf);
                for (o, x) in v.iter_mut().zip(buf.iter()) {
                    *o = f16::from_f32(*x);
                }
                r
            }
        }
    }
}
