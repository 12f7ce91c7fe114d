//! The tensor type: contiguous row-major storage, shape, dtype, device.
//!
//! Ownership rule (simple and safe): cloning a tensor or taking a view (`narrow`, `reshape`)
//! shares the storage; **writing** (`as_mut_slice`, any op's `out` argument) needs the tensor to
//! be the only holder of its storage, otherwise the write fails with `Error::SharedStorage`.
//! So preallocate output buffers as their own tensors and read through views freely.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{invalid, shape_err};
use crate::storage::{CpuStorage, Storage};
use crate::{DType, Device, Element, Error, Result};

/// A contiguous row-major tensor (possibly a view at an element offset into shared storage).
#[derive(Clone, Debug)]
pub struct Tensor {
    storage: Arc<Storage>,
    offset: usize,
    shape: Vec<usize>,
    dtype: DType,
    device: Device,
}

fn numel_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    fn from_cpu(storage: CpuStorage, shape: &[usize]) -> Tensor {
        let dtype = storage.dtype();
        Tensor {
            storage: Arc::new(Storage::Cpu(storage)),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
            device: Device::Cpu,
        }
    }

    #[cfg(feature = "cuda")]
    fn from_cuda(storage: crate::cuda::CudaStorage, shape: &[usize], ordinal: usize) -> Tensor {
        let dtype = storage.dtype();
        Tensor {
            storage: Arc::new(Storage::Cuda(storage)),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
            device: Device::Cuda(ordinal),
        }
    }

    /// A zero-filled tensor.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        match device {
            Device::Cpu => Ok(Self::from_cpu(
                CpuStorage::zeros(dtype, numel_of(shape)),
                shape,
            )),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => Ok(Self::from_cuda(
                crate::cuda::CudaStorage::zeros(*i, dtype, numel_of(shape))?,
                shape,
                *i,
            )),
            #[allow(unreachable_patterns)]
            other => Err(Error::Device {
                op: "zeros",
                msg: format!("no backend for {other:?} in this build"),
            }),
        }
    }

    /// A tensor filled with `value` (converted to `dtype`).
    pub fn full(shape: &[usize], value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        if !device.is_cpu() {
            // Filled on the host and uploaded: no fill kernel, and `full` is not on a hot path.
            return Self::full(shape, value, dtype, &Device::Cpu)?.to_device(device);
        }
        let mut t = Self::zeros(shape, dtype, device)?;
        t.fill(value)?;
        Ok(t)
    }

    /// Takes ownership of `data` (CPU). `data.len()` must equal the product of `shape`.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel_of(shape) {
            return shape_err(
                "from_vec",
                format!("{} elements do not fill shape {shape:?}", data.len()),
            );
        }
        Ok(Self::from_cpu(CpuStorage::from_vec(data), shape))
    }

    /// Copies `data` into a new CPU tensor.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Self::from_vec(data.to_vec(), shape)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Alias of [`Tensor::shape`].
    pub fn dims(&self) -> &[usize] {
        &self.shape
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Size of dimension `d` (panics only if `d >= rank`, a programming error).
    pub fn dim(&self, d: usize) -> usize {
        self.shape[d]
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn numel(&self) -> usize {
        numel_of(&self.shape)
    }
    pub fn size_in_bytes(&self) -> usize {
        self.numel() * self.dtype.size_in_bytes()
    }
    /// Element offset of this view into its storage.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// The shared storage (backends use it to reach the raw buffer).
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }
    /// True when no other tensor shares this storage (so it may be written).
    pub fn is_unique(&self) -> bool {
        Arc::strong_count(&self.storage) == 1
    }

    /// A view of rows `start..start+len` along dim 0, sharing storage.
    pub fn narrow(&self, start: usize, len: usize) -> Result<Tensor> {
        if self.shape.is_empty() || start + len > self.shape[0] {
            return shape_err(
                "narrow",
                format!(
                    "rows {start}..{} out of shape {:?}",
                    start + len,
                    self.shape
                ),
            );
        }
        let row = numel_of(&self.shape[1..]);
        let mut shape = self.shape.clone();
        shape[0] = len;
        Ok(Tensor {
            storage: self.storage.clone(),
            offset: self.offset + start * row,
            shape,
            dtype: self.dtype,
            device: self.device,
        })
    }

    /// A view with another shape of the same element count, sharing storage.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel_of(shape) != self.numel() {
            return shape_err(
                "reshape",
                format!("cannot reshape {:?} to {shape:?}", self.shape),
            );
        }
        let mut t = self.clone();
        t.shape = shape.to_vec();
        Ok(t)
    }

    /// Reshape in place (no storage change).
    pub fn reshape_mut(&mut self, shape: &[usize]) -> Result<()> {
        if numel_of(shape) != self.numel() {
            return shape_err(
                "reshape",
                format!("cannot reshape {:?} to {shape:?}", self.shape),
            );
        }
        self.shape = shape.to_vec();
        Ok(())
    }

    pub(crate) fn cpu_storage(&self, op: &'static str) -> Result<&CpuStorage> {
        match &*self.storage {
            Storage::Cpu(s) => Ok(s),
            #[allow(unreachable_patterns)]
            _ => Err(Error::NotOnHost {
                op,
                device: self.device,
            }),
        }
    }

    /// The elements as a host slice; errors if `T` is not the dtype or the tensor is not on CPU.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let s = self.cpu_storage("as_slice")?;
        let all = s.as_slice::<T>().ok_or(Error::DType {
            op: "as_slice",
            got: self.dtype,
            msg: format!("requested {:?}", T::DTYPE),
        })?;
        Ok(&all[self.offset..self.offset + self.numel()])
    }

    /// Mutable host slice; also errors if the storage is shared (see the module docs).
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        let (dtype, offset, n, device) = (self.dtype, self.offset, self.numel(), self.device);
        let shape = self.shape.clone();
        let st = Arc::get_mut(&mut self.storage).ok_or(Error::SharedStorage {
            op: "as_mut_slice",
            shape,
        })?;
        match st {
            Storage::Cpu(s) => {
                let all = s.as_mut_slice::<T>().ok_or(Error::DType {
                    op: "as_mut_slice",
                    got: dtype,
                    msg: format!("requested {:?}", T::DTYPE),
                })?;
                Ok(&mut all[offset..offset + n])
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::NotOnHost {
                op: "as_mut_slice",
                device,
            }),
        }
    }

    /// The elements converted to `T` (any dtype to any dtype; float->int truncates).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        #[cfg(feature = "cuda")]
        if !self.device.is_cpu() {
            return self.to_device(&Device::Cpu)?.to_vec();
        }
        if T::DTYPE == self.dtype {
            return Ok(self.as_slice::<T>()?.to_vec());
        }
        let s = self.cpu_storage("to_vec")?;
        let r = self.offset..self.offset + self.numel();
        Ok(match s {
            CpuStorage::F32(v) => v[r].iter().map(|x| T::from_f32(*x)).collect(),
            CpuStorage::BF16(v) => v[r].iter().map(|x| T::from_f32(x.to_f32())).collect(),
            CpuStorage::F16(v) => v[r].iter().map(|x| T::from_f32(x.to_f32())).collect(),
            CpuStorage::I32(v) => v[r].iter().map(|x| T::from_f64(*x as f64)).collect(),
            CpuStorage::I64(v) => v[r].iter().map(|x| T::from_f64(*x as f64)).collect(),
        })
    }

    /// The elements as f32 (casting).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        self.to_vec::<f32>()
    }

    /// The single element of a one-element tensor, as f64.
    pub fn to_scalar(&self) -> Result<f64> {
        if self.numel() != 1 {
            return shape_err(
                "to_scalar",
                format!("shape {:?} is not one element", self.shape),
            );
        }
        Ok(if self.dtype.is_int() {
            self.to_vec::<i64>()?[0] as f64
        } else {
            self.to_vec::<f32>()?[0] as f64
        })
    }

    /// A new tensor of `dtype` with unique storage (a copy even when the dtype is unchanged).
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        let mut out = Tensor::zeros(&self.shape, dtype, &self.device)?;
        crate::ops::cast_into(&mut out, self)?;
        Ok(out)
    }

    /// A deep copy with unique storage.
    pub fn copy(&self) -> Result<Tensor> {
        self.cast(self.dtype)
    }

    /// Sets every element to `value` (converted to the dtype).
    pub fn fill(&mut self, value: f64) -> Result<()> {
        #[cfg(feature = "cuda")]
        if !self.device.is_cpu() {
            // Filled on the host and copied in: no fill kernel, and fills are not on a hot path.
            let src = Tensor::full(&self.shape, value, self.dtype, &self.device)?;
            return crate::ops::cast_into(self, &src);
        }
        match self.dtype {
            DType::F32 => self.as_mut_slice::<f32>()?.fill(value as f32),
            DType::BF16 => self
                .as_mut_slice::<half::bf16>()?
                .fill(half::bf16::from_f64(value)),
            DType::F16 => self
                .as_mut_slice::<half::f16>()?
                .fill(half::f16::from_f64(value)),
            DType::I32 => self.as_mut_slice::<i32>()?.fill(value as i32),
            DType::I64 => self.as_mut_slice::<i64>()?.fill(value as i64),
        }
        Ok(())
    }

    /// Sets every element to zero.
    pub fn zero(&mut self) -> Result<()> {
        self.fill(0.0)
    }

    /// Float elements as f32: borrowed for F32, converted for BF16/F16. Errors for int dtypes.
    pub(crate) fn f32_cow(&self, op: &'static str) -> Result<Cow<'_, [f32]>> {
        let s = self.cpu_storage(op)?;
        let r = self.offset..self.offset + self.numel();
        match s {
            CpuStorage::F32(v) => Ok(Cow::Borrowed(&v[r])),
            CpuStorage::BF16(v) => Ok(Cow::Owned(crate::cpu::cast::bf16_to_f32_vec(&v[r]))),
            CpuStorage::F16(v) => Ok(Cow::Owned(v[r].iter().map(|x| x.to_f32()).collect())),
            _ => Err(Error::DType {
                op,
                got: self.dtype,
                msg: "expected a float tensor".into(),
            }),
        }
    }

    /// Integer elements (ids, positions) as i64: borrowed for I64, converted for I32.
    pub(crate) fn i64_cow(&self, op: &'static str) -> Result<Cow<'_, [i64]>> {
        let s = self.cpu_storage(op)?;
        let r = self.offset..self.offset + self.numel();
        match s {
            CpuStorage::I64(v) => Ok(Cow::Borrowed(&v[r])),
            CpuStorage::I32(v) => Ok(Cow::Owned(v[r].iter().map(|&x| x as i64).collect())),
            _ => Err(Error::DType {
                op,
                got: self.dtype,
                msg: "expected an I32 or I64 index tensor".into(),
            }),
        }
    }

    /// Runs `f` on this float tensor's elements as a mutable f32 slice. For BF16/F16 the values
    /// go through a temporary (loaded first only when `load`, e.g. to accumulate) and are
    /// rounded back afterwards.
    pub(crate) fn with_f32_mut<R>(
        &mut self,
        op: &'static str,
        load: bool,
        f: impl FnOnce(&mut [f32]) -> Result<R>,
    ) -> Result<R> {
        if !self.is_unique() {
            return Err(Error::SharedStorage {
                op,
                shape: self.shape.clone(),
            });
        }
        match self.dtype {
            DType::F32 => f(self.as_mut_slice::<f32>()?),
            DType::BF16 => {
                let mut tmp = if load {
                    self.f32_cow(op)?.into_owned()
                } else {
                    vec![0.0; self.numel()]
                };
                let r = f(&mut tmp)?;
                crate::cpu::cast::f32_to_bf16_slice(&tmp, self.as_mut_slice()?);
                Ok(r)
            }
            DType::F16 => {
                let mut tmp = if load {
                    self.f32_cow(op)?.into_owned()
                } else {
                    vec![0.0; self.numel()]
                };
                let r = f(&mut tmp)?;
                for (o, x) in self.as_mut_slice::<half::f16>()?.iter_mut().zip(&tmp) {
                    *o = half::f16::from_f32(*x);
                }
                Ok(r)
            }
            other => Err(Error::DType {
                op,
                got: other,
                msg: "expected a float output tensor".into(),
            }),
        }
    }

    /// Moves to `device` (a copy; CPU->CPU copies too).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        match device {
            Device::Cpu if self.device.is_cpu() => self.copy(),
            #[cfg(feature = "cuda")]
            _ => self.to_device_cuda(device),
            #[allow(unreachable_patterns)]
            other => invalid(
                "to_device",
                format!(
                    "no transfer path {:?} -> {other:?} in this build",
                    self.device
                ),
            ),
        }
    }

    /// Host<->device and device<->device copies (through the host; transfers are not on a hot
    /// path: weights move once, results come back once per step).
    #[cfg(feature = "cuda")]
    fn to_device_cuda(&self, device: &Device) -> Result<Tensor> {
        let host = match &*self.storage {
            Storage::Cpu(_) => None,
            Storage::Cuda(c) => Some(c.to_cpu()?),
        };
        let host = match host {
            Some(all) => {
                let t = Tensor {
                    storage: Arc::new(Storage::Cpu(all)),
                    offset: self.offset,
                    shape: self.shape.clone(),
                    dtype: self.dtype,
                    device: Device::Cpu,
                };
                t.copy()?
            }
            None => self.copy()?,
        };
        match device {
            Device::Cpu => Ok(host),
            Device::Cuda(i) => {
                let cpu = host.cpu_storage("to_device")?;
                Ok(Self::from_cuda(
                    crate::cuda::CudaStorage::from_cpu(*i, cpu)?,
                    &self.shape,
                    *i,
                ))
            }
        }
    }

    /// The device buffer of a CUDA tensor and this view's element offset.
    #[cfg(feature = "cuda")]
    pub(crate) fn cuda_storage(
        &self,
        op: &'static str,
    ) -> Result<(&crate::cuda::CudaStorage, usize)> {
        match &*self.storage {
            Storage::Cuda(c) => Ok((c, self.offset)),
            Storage::Cpu(_) => Err(Error::Device {
                op,
                msg: "expected a CUDA tensor, got a CPU one".into(),
            }),
        }
    }

    /// Mutable device buffer and offset; errors when the storage is shared (module docs).
    #[cfg(feature = "cuda")]
    pub(crate) fn cuda_storage_mut(
        &mut self,
        op: &'static str,
    ) -> Result<(&mut crate::cuda::CudaStorage, usize)> {
        let offset = self.offset;
        let shape = self.shape.clone();
        match Arc::get_mut(&mut self.storage) {
            None => Err(Error::SharedStorage { op, shape }),
            Some(Storage::Cuda(c)) => Ok((c, offset)),
            Some(Storage::Cpu(_)) => Err(Error::Device {
                op,
                msg: "expected a CUDA tensor, got a CPU one".into(),
            }),
        }
    }
}
