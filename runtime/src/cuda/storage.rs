//! A tensor's buffer on a CUDA device: a block from the device's caching allocator plus its
//! dtype and element count. Host transfers go through the device's one stream.

use half::{bf16, f16};
use kernels::alloc::Block;
use kernels::cudarc::driver::{CudaView, CudaViewMut, DeviceRepr};

use super::{dev_err, device, CudaDevice};
use crate::storage::CpuStorage;
use crate::{DType, Element, Error, Result};

pub struct CudaStorage {
    dev: &'static CudaDevice,
    block: Block,
    dtype: DType,
    len: usize,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaStorage(cuda:{}, {:?} x {})",
            self.dev.ordinal, self.dtype, self.len
        )
    }
}

fn drv(op: &'static str) -> impl Fn(kernels::cudarc::driver::DriverError) -> Error {
    move |e| Error::Device {
        op,
        msg: format!("{e:?}"),
    }
}

fn elem_size(dtype: DType) -> usize {
    match dtype {
        DType::F32 | DType::I32 => 4,
        DType::BF16 | DType::F16 => 2,
        DType::I64 => 8,
    }
}

impl CudaStorage {
    fn alloc(ordinal: usize, dtype: DType, len: usize) -> Result<Self> {
        let dev = device(ordinal)?;
        let block = dev
            .alloc
            .alloc(len * elem_size(dtype))
            .map_err(dev_err("cuda alloc"))?;
        Ok(CudaStorage {
            dev,
            block,
            dtype,
            len,
        })
    }

    /// `len` zeros of `dtype` on device `ordinal`.
    pub fn zeros(ordinal: usize, dtype: DType, len: usize) -> Result<Self> {
        let mut s = Self::alloc(ordinal, dtype, len)?;
        let bytes = len * elem_size(dtype);
        let stream = s.dev.gpu.stream().clone();
        {
            // SAFETY: bytes are plain data; the view covers this block only.
            let mut v = unsafe { s.block.view_mut::<u8>(bytes) }.map_err(dev_err("cuda zeros"))?;
            stream.memset_zeros(&mut v).map_err(drv("cuda zeros"))?;
        }
        Ok(s)
    }

    /// A device copy of host storage.
    pub fn from_cpu(ordinal: usize, cpu: &CpuStorage) -> Result<Self> {
        let (dtype, len) = (cpu.dtype(), cpu_len(cpu));
        let mut s = Self::alloc(ordinal, dtype, len)?;
        match cpu {
            CpuStorage::F32(v) => s.upload(v)?,
            CpuStorage::BF16(v) => s.upload(v)?,
            CpuStorage::F16(v) => s.upload(v)?,
            CpuStorage::I32(v) => s.upload(v)?,
            CpuStorage::I64(v) => s.upload(v)?,
        }
        Ok(s)
    }

    fn upload<T: DeviceRepr>(&mut self, v: &[T]) -> Result<()> {
        let stream = self.dev.gpu.stream().clone();
        // SAFETY: the view is exactly the uploaded elements of this block's dtype.
        let mut dst =
            unsafe { self.block.view_mut::<T>(v.len()) }.map_err(dev_err("cuda upload"))?;
        stream.memcpy_htod(v, &mut dst).map_err(drv("cuda upload"))
    }

    fn download<T: Element + DeviceRepr>(&self) -> Result<CpuStorage> {
        // SAFETY: the block holds `len` values of this dtype (written by upload, zeros or kernels).
        let src = unsafe { self.view::<T>(0, self.len) }?;
        let v: Vec<T> = self
            .dev
            .gpu
            .stream()
            .clone_dtoh(&src)
            .map_err(drv("cuda download"))?;
        Ok(CpuStorage::from_vec(v))
    }

    /// A host copy (waits for the stream's queued work).
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match self.dtype {
            DType::F32 => self.download::<f32>(),
            DType::BF16 => self.download::<bf16>(),
            DType::F16 => self.download::<f16>(),
            DType::I32 => self.download::<i32>(),
            DType::I64 => self.download::<i64>(),
        }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn device(&self) -> &'static CudaDevice {
        self.dev
    }

    /// Elements `offset .. offset + len` as `T` (a tensor view), for the kernels' launchers.
    ///
    /// # Safety
    /// `T` must be this storage's element type.
    pub unsafe fn view<T>(&self, offset: usize, len: usize) -> Result<CudaView<'_, T>> {
        self.check_range(offset, len)?;
        let all = self
            .block
            .view::<T>(self.len)
            .map_err(dev_err("cuda view"))?;
        Ok(all.slice(offset..offset + len))
    }

    /// All `len` elements as mutable `T` (slice it for a tensor view: `.slice_mut(a..b)`).
    ///
    /// # Safety
    /// As [`CudaStorage::view`].
    pub unsafe fn view_mut<T>(&mut self) -> Result<CudaViewMut<'_, T>> {
        let n = self.len;
        self.block.view_mut::<T>(n).map_err(dev_err("cuda view"))
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(Error::Shape {
                op: "cuda view",
                msg: format!(
                    "elements {offset}..{} outside a buffer of {}",
                    offset + len,
                    self.len
                ),
            });
        }
        Ok(())
    }
}

fn cpu_len(c: &CpuStorage) -> usize {
    match c {
        CpuStorage::F32(v) => v.len(),
        CpuStorage::BF16(v) => v.len(),
        CpuStorage::F16(v) => v.len(),
        CpuStorage::I32(v) => v.len(),
        CpuStorage::I64(v) => v.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skips with a printed reason when no device is present.
    fn have_device() -> bool {
        match kernels::context::unavailable_reason() {
            Some(why) => {
                eprintln!("skipping CUDA storage test: {why}");
                false
            }
            None => true,
        }
    }

    #[test]
    fn every_dtype_round_trips_and_zeros_are_zero() {
        if !have_device() {
            let e = device(0)
                .err()
                .expect("no device, no CudaDevice")
                .to_string();
            assert!(e.contains("cuda device"), "{e}");
            return;
        }
        let n = 1001;
        let cases = [
            CpuStorage::F32((0..n).map(|i| i as f32 * 0.5 - 7.0).collect()),
            CpuStorage::BF16((0..n).map(|i| bf16::from_f32(i as f32 - 3.0)).collect()),
            CpuStorage::F16((0..n).map(|i| f16::from_f32(i as f32 / 8.0)).collect()),
            CpuStorage::I32((0..n as i32).map(|i| i * 3 - 100).collect()),
            CpuStorage::I64((0..n as i64).map(|i| i << 33).collect()),
        ];
        for c in &cases {
            let d = CudaStorage::from_cpu(0, c).unwrap();
            assert_eq!((d.dtype(), d.len()), (c.dtype(), n));
            let back = d.to_cpu().unwrap();
            assert_eq!(format!("{back:?}"), format!("{c:?}"));
            let z = CudaStorage::zeros(0, c.dtype(), n)
                .unwrap()
                .to_cpu()
                .unwrap();
            assert_eq!(
                format!("{z:?}"),
                format!("{:?}", CpuStorage::zeros(c.dtype(), n))
            );
        }
        let d = CudaStorage::from_cpu(0, &cases[0]).unwrap();
        // SAFETY: F32 storage viewed as f32.
        assert!(unsafe { d.view::<f32>(1000, 2) }.is_err());
    }
}
