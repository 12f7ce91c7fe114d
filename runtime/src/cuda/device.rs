//! Per-device state, opened once per process.

use std::sync::{Mutex, OnceLock};

use kernels::alloc::CachingAllocator;
use kernels::gemm::Gemm;
use kernels::Gpu;

use super::dev_err;
use crate::Result;

/// One device's stream, kernels, cuBLASLt handle and allocator.
pub struct CudaDevice {
    pub ordinal: usize,
    pub gpu: Gpu,
    pub gemm: Gemm,
    pub alloc: CachingAllocator,
}

// Devices live for the whole process: backends and storages hold `&'static CudaDevice`.
static DEVICES: OnceLock<Mutex<Vec<Option<&'static CudaDevice>>>> = OnceLock::new();

/// The device `ordinal`, opened on first use; `Error::Device` with the one-line reason when
/// CUDA cannot be used here (no driver, no NVRTC, no such device).
pub fn device(ordinal: usize) -> Result<&'static CudaDevice> {
    const OP: &str = "cuda device";
    let all = DEVICES.get_or_init(|| Mutex::new(Vec::new()));
    let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(Some(d)) = all.get(ordinal) {
        return Ok(d);
    }
    let gpu = Gpu::new(ordinal).map_err(dev_err(OP))?;
    let gemm = Gemm::new(&gpu).map_err(dev_err(OP))?;
    let alloc = CachingAllocator::new(&gpu);
    let d: &'static CudaDevice = Box::leak(Box::new(CudaDevice {
        ordinal,
        gpu,
        gemm,
        alloc,
    }));
    if all.len() <= ordinal {
        all.resize(ordinal + 1, None);
    }
    all[ordinal] = Some(d);
    Ok(d)
}

/// Lines for `swerl info`: driver and NVRTC versions and the devices, or one line saying why
/// CUDA is unavailable.
pub fn report() -> Vec<String> {
    kernels::context::report()
}
