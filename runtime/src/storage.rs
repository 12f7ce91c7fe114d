//! Backing buffers. A tensor holds an `Arc<Storage>` plus an element offset, so views are cheap.

use half::{bf16, f16};

use crate::{DType, Element};

/// Host memory, one typed vector per dtype (keeps alignment and `bytemuck` casts trivial).
#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl CpuStorage {
    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::I32 => CpuStorage::I32(vec![0; n]),
            DType::I64 => CpuStorage::I64(vec![0; n]),
        }
    }

    pub fn from_vec<T: Element>(v: Vec<T>) -> Self {
        // `T::DTYPE` pins the concrete type, so the cast below is an identity reinterpretation.
        match T::DTYPE {
            DType::F32 => CpuStorage::F32(bytemuck::allocation::cast_vec(v)),
            DType::BF16 => CpuStorage::BF16(bytemuck::allocation::cast_vec(v)),
            DType::F16 => CpuStorage::F16(bytemuck::allocation::cast_vec(v)),
            DType::I32 => CpuStorage::I32(bytemuck::allocation::cast_vec(v)),
            DType::I64 => CpuStorage::I64(bytemuck::allocation::cast_vec(v)),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::I32(_) => DType::I32,
            CpuStorage::I64(_) => DType::I64,
        }
    }

    /// The whole buffer as `&[T]`; `None` when `T` is not this storage's dtype.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        if T::DTYPE != self.dtype() {
            return None;
        }
        Some(match self {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::I32(v) => bytemuck::cast_slice(v),
            CpuStorage::I64(v) => bytemuck::cast_slice(v),
        })
    }

    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        if T::DTYPE != self.dtype() {
            return None;
        }
        Some(match self {
            CpuStorage::F32(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::F16(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::I32(v) => bytemuck::cast_slice_mut(v),
            CpuStorage::I64(v) => bytemuck::cast_slice_mut(v),
        })
    }
}

/// Storage on some device. The CUDA backend adds its variant behind the `cuda` feature.
#[derive(Debug)]
pub enum Storage {
    Cpu(CpuStorage),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaStorage),
}
