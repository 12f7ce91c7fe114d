//! The device handle the launchers run on: one context, one stream, modules compiled (through
//! the PTX cache) and loaded on first use.

use crate::compile;
use crate::error::{KernelError, Result};
use crate::registry;
use crate::signature::{self, Param};
use cudarc::driver::{
    self, CudaContext, CudaFunction, CudaModule, CudaStream, DeviceRepr, DriverError, PushKernelArg,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// An element type the kernels store: the entry point is `<name>_<SUFFIX>`.
pub trait Elem: DeviceRepr + Copy + Default + 'static {
    const SUFFIX: &'static str;
}
impl Elem for f32 {
    const SUFFIX: &'static str = "f32";
}
impl Elem for half::bf16 {
    const SUFFIX: &'static str = "bf16";
}
impl Elem for half::f16 {
    const SUFFIX: &'static str = "f16";
}
impl Elem for i32 {
    const SUFFIX: &'static str = "i32";
}
impl Elem for i64 {
    const SUFFIX: &'static str = "i64";
}

/// True when libcuda can be loaded (cudarc panics on first use otherwise).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { driver::sys::is_culib_present() }
}

/// One line saying why no CUDA device can be used here, or None when one can.
pub fn unavailable_reason() -> Option<String> {
    if !driver_present() {
        return Some("no CUDA driver (libcuda.so not found)".into());
    }
    if !compile::nvrtc_present() {
        return Some("no NVRTC (libnvrtc.so.13 not on LD_LIBRARY_PATH)".into());
    }
    match CudaContext::device_count() {
        Ok(n) if n > 0 => None,
        Ok(_) => Some("the CUDA driver sees no device".into()),
        Err(e) => Some(format!("the CUDA driver failed to start: {e:?}")),
    }
}

/// CUDA driver version as (major, minor), e.g. (13, 0).
pub fn driver_version() -> Result<(i32, i32)> {
    if !driver_present() {
        return Err(KernelError::Unavailable(
            "no CUDA driver (libcuda.so not found)".into(),
        ));
    }
    let mut v = 0;
    // SAFETY: library present; pointer valid for writes.
    let r = unsafe { driver::sys::cuDriverGetVersion(&mut v) };
    if r != driver::sys::CUresult::CUDA_SUCCESS {
        return Err(KernelError::Unavailable(format!(
            "cuDriverGetVersion failed: {r:?}"
        )));
    }
    Ok((v / 1000, (v % 1000) / 10))
}

/// Maps a driver error into the crate's error, naming the op.
pub(crate) fn drv(op: &'static str) -> impl Fn(DriverError) -> KernelError {
    move |e| KernelError::Driver {
        op,
        msg: format!("{e:?}"),
    }
}

/// A loaded entry point and its source signature.
type LoadedEntry = (CudaFunction, Arc<Vec<Param>>);

pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: &'static str,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, LoadedEntry>>,
}

impl Gpu {
    /// Opens device `ordinal` with a fresh stream; fails with one line when CUDA is unavailable.
    pub fn new(ordinal: usize) -> Result<Self> {
        if let Some(why) = unavailable_reason() {
            return Err(KernelError::Unavailable(why));
        }
        let ctx = CudaContext::new(ordinal).map_err(drv("open device"))?;
        let stream = ctx.new_stream().map_err(drv("create stream"))?;
        Self::with_stream(stream)
    }

    /// Runs on an existing stream (the CUDA backend's one stream per device).
    pub fn with_stream(stream: Arc<CudaStream>) -> Result<Self> {
        let ctx = stream.context().clone();
        let (major, minor) = ctx
            .compute_capability()
            .map_err(drv("compute capability"))?;
        let arch = compile::arch_for(major, minor)?;
        Ok(Self {
            ctx,
            stream,
            arch,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// NVRTC's virtual architecture for this device, e.g. `compute_90a`.
    pub fn arch(&self) -> &'static str {
        self.arch
    }

    /// Waits for all work queued on the stream; surfaces asynchronous kernel faults.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv("synchronize"))
    }

    /// Entry point `entry` of kernel source `kernel`, compiling and loading the module once.
    pub fn function(&self, kernel: &'static str, entry: &str) -> Result<CudaFunction> {
        let module = {
            let mut mods = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            match mods.get(kernel) {
                Some(m) => m.clone(),
                None => {
                    let src = registry::kernel(kernel)
                        .ok_or_else(|| KernelError::UnknownKernel(kernel.into()))?;
                    let ptx = compile::compile_ptx(src, self.arch)?;
                    let m = self
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                        .map_err(drv("load module"))?;
                    mods.insert(kernel, m.clone());
                    m
                }
            }
        };
        module
            .load_function(entry)
            .map_err(|e| KernelError::Driver {
                op: "load function",
                msg: format!("{kernel}.cu has no entry {entry}: {e:?}"),
            })
    }

    /// A launch of `entry` (from kernel source `kernel`), checked against the entry's source
    /// signature when it runs. `op` names the public op in errors.
    pub(crate) fn launch(
        &self,
        op: &'static str,
        kernel: &'static str,
        entry: String,
    ) -> Result<Launch<'_>> {
        let cached = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&entry)
            .cloned();
        let (func, sig) = match cached {
            Some(c) => c,
            None => {
                let src = registry::kernel(kernel)
                    .ok_or_else(|| KernelError::UnknownKernel(kernel.into()))?;
                let sig =
                    signature::signature(src, &entry).ok_or_else(|| KernelError::Signature {
                        op,
                        entry: entry.clone(),
                        expected: "a __global__ declaration in the source".into(),
                        got: "none".into(),
                    })?;
                let pair = (self.function(kernel, &entry)?, Arc::new(sig));
                self.functions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(entry.clone(), pair.clone());
                pair
            }
        };
        Ok(Launch {
            gpu: self,
            op,
            entry,
            func,
            sig,
            args: Vec::new(),
        })
    }

    /// Loads every registered kernel now, so compile errors surface before a run starts.
    pub fn preload(&self) -> Result<()> {
        for k in registry::KERNELS {
            self.function(k.name, k.entries[0])?;
        }
        Ok(())
    }
}

/// Errors unless a buffer holds at least `want` elements.
pub(crate) fn need(op: &'static str, what: &str, have: usize, want: usize) -> Result<()> {
    if have < want {
        return Err(crate::error::shape(
            op,
            format!("{what} holds {have} elements, needs {want}"),
        ));
    }
    Ok(())
}

/// A dimension as the kernels' `int`, or an error naming it.
pub(crate) fn dim(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| crate::error::shape(op, format!("{what} = {v} exceeds i32")))
}

/// Blocks for a grid-stride loop over `n` items with `threads` per block.
pub(crate) fn stride_blocks(n: usize, threads: u32) -> u32 {
    (n.div_ceil(threads as usize)).clamp(1, 65_535 * 8) as u32
}

pub(crate) fn cfg(grid: u32, block: (u32, u32)) -> driver::LaunchConfig {
    driver::LaunchConfig {
        grid_dim: (grid.max(1), 1, 1),
        block_dim: (block.0, block.1, 1),
        shared_mem_bytes: 0,
    }
}

/// `a * b` or a shape error naming the op.
pub(crate) fn mul(op: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| crate::error::shape(op, format!("{a} x {b} elements overflow")))
}

/// One kernel argument, by how it is passed.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

impl Arg {
    fn kind(&self) -> Param {
        match self {
            Arg::Ptr(_) => Param::Ptr,
            Arg::I32(_) => Param::I32,
            Arg::I64(_) => Param::I64,
            Arg::F32(_) => Param::F32,
        }
    }
}

/// Arguments collected for one launch; [`Launch::run`] checks them against the signature read
/// from the `.cu` source before anything reaches the driver.
pub(crate) struct Launch<'g> {
    gpu: &'g Gpu,
    op: &'static str,
    entry: String,
    func: CudaFunction,
    sig: Arc<Vec<Param>>,
    args: Vec<Arg>,
}

impl Launch<'_> {
    /// A device address (0 for a null pointer).
    pub fn ptr(mut self, p: u64) -> Self {
        self.args.push(Arg::Ptr(p));
        self
    }
    pub fn i32(mut self, v: i32) -> Self {
        self.args.push(Arg::I32(v));
        self
    }
    pub fn i64(mut self, v: i64) -> Self {
        self.args.push(Arg::I64(v));
        self
    }
    pub fn f32(mut self, v: f32) -> Self {
        self.args.push(Arg::F32(v));
        self
    }

    /// Appends `n` as the last (`i64`) argument and launches one grid-stride pass over `n`
    /// elements in blocks of 256 threads: the flat element-wise kernels' shape.
    pub fn run_flat(self, n: usize) -> Result<()> {
        self.i64(n as i64).run(stride_blocks(n, 256), (256, 1))
    }

    /// Launches on the device's stream with `grid` blocks of `block` threads.
    pub fn run(self, grid: u32, block: (u32, u32)) -> Result<()> {
        let got: Vec<Param> = self.args.iter().map(Arg::kind).collect();
        if got != *self.sig {
            return Err(KernelError::Signature {
                op: self.op,
                entry: self.entry,
                expected: format!("{:?}", self.sig),
                got: format!("{got:?}"),
            });
        }
        let mut b = self.gpu.stream.launch_builder(&self.func);
        for a in &self.args {
            match a {
                Arg::Ptr(v) => b.arg(v),
                Arg::I32(v) => b.arg(v),
                Arg::I64(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
            };
        }
        // SAFETY: the argument kinds and count match the entry's declaration (checked above, and
        // the declarations against the PTX in CI); callers check every buffer's length.
        unsafe { b.launch(cfg(grid, block)) }.map_err(drv(self.op))?;
        Ok(())
    }
}

/// One CUDA device as `swerl info` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_bytes: usize,
    pub free_bytes: usize,
}

/// Every device the driver sees; an `Unavailable` error (one line) when CUDA cannot be used.
pub fn devices() -> Result<Vec<DeviceInfo>> {
    if let Some(why) = unavailable_reason() {
        return Err(KernelError::Unavailable(why));
    }
    let n = CudaContext::device_count().map_err(drv("device count"))?;
    (0..n as usize)
        .map(|i| {
            let ctx = CudaContext::new(i).map_err(drv("open device"))?;
            let (free_bytes, total_bytes) = ctx.mem_get_info().map_err(drv("memory info"))?;
            Ok(DeviceInfo {
                ordinal: i,
                name: ctx.name().map_err(drv("device name"))?,
                compute_capability: ctx
                    .compute_capability()
                    .map_err(drv("compute capability"))?,
                total_bytes,
                free_bytes,
            })
        })
        .collect()
}

/// Lines for `swerl info`: driver and NVRTC versions and one line per device, or a single line
/// saying why CUDA is unavailable.
pub fn report() -> Vec<String> {
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    match devices() {
        Err(e) => vec![format!("cuda: unavailable: {e}")],
        Ok(devs) => {
            let ver = |v: Result<(i32, i32)>| {
                v.map_or_else(|e| format!("? ({e})"), |(a, b)| format!("{a}.{b}"))
            };
            let mut lines = vec![format!(
                "cuda: driver {}, nvrtc {}, {} device(s)",
                ver(driver_version()),
                ver(compile::nvrtc_version()),
                devs.len()
            )];
            lines.extend(devs.iter().map(|d| {
                format!(
                    "cuda:{} {} (sm_{}{}), {:.1} GiB total, {:.1} GiB free",
                    d.ordinal,
                    d.name,
                    d.compute_capability.0,
                    d.compute_capability.1,
                    gib(d.total_bytes),
                    gib(d.free_bytes)
                )
            }));
            lines
        }
    }
}
