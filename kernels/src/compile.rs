//! NVRTC compilation of the kernel sources to PTX, through the on-disk cache. The CUDA backend
//! and the CI resource check both call [`compile_ptx`], so CI checks exactly what runs.

use crate::cache;
use crate::error::{KernelError, Result};
use crate::registry::KernelSource;
use cudarc::nvrtc;

/// True when libnvrtc can be loaded (cudarc panics on first use otherwise).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { nvrtc::sys::is_culib_present() }
}

fn require_nvrtc() -> Result<()> {
    if nvrtc_present() {
        Ok(())
    } else {
        Err(KernelError::Unavailable(
            "libnvrtc not found (put the folder holding libnvrtc.so.13 on LD_LIBRARY_PATH)".into(),
        ))
    }
}

/// NVRTC's (major, minor) version.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    require_nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: library presence checked above; both pointers are valid for writes.
    let r = unsafe { nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(KernelError::Unavailable(format!(
            "nvrtcVersion failed: {r:?}"
        )));
    }
    Ok((major, minor))
}

/// The virtual architecture NVRTC targets for a device of compute capability `major.minor`.
/// Hopper gets `compute_90a` so arch-specific instructions are allowed.
pub fn arch_for(major: i32, minor: i32) -> Result<&'static str> {
    Ok(match (major, minor) {
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90a",
        (10, 0) => "compute_100",
        (10, 3) => "compute_103",
        (11, 0) => "compute_110",
        (12, 0) => "compute_120",
        (12, 1) => "compute_121",
        (m, _) if m >= 8 => "compute_80",
        _ => return Err(KernelError::UnsupportedDevice { major, minor }),
    })
}

/// The exact NVRTC options for `arch` (also part of the cache key).
pub fn compile_options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".into(),
        "--fmad=true".into(),
        "--generate-line-info".into(),
    ]
}

/// PTX for `kernel` on virtual architecture `arch` (e.g. `compute_90a`), from the cache when the
/// same source, options and NVRTC version were compiled before. Cache write failures are ignored:
/// the cache only saves time.
pub fn compile_ptx(kernel: &KernelSource, arch: &str) -> Result<String> {
    let version = nvrtc_version()?;
    let source = kernel.full_source();
    let options = compile_options(arch);
    let path = cache::cache_dir().map(|d| {
        d.join(cache::entry_name(
            kernel.name,
            arch,
            &source,
            &options,
            version,
        ))
    });
    if let Some(text) = path.as_deref().and_then(cache::read) {
        return Ok(text);
    }
    let opts = nvrtc::CompileOptions {
        options: options.clone(),
        name: Some(format!("{}.cu", kernel.name)),
        ..Default::default()
    };
    let ptx = nvrtc::compile_ptx_with_opts(&source, opts).map_err(|e| KernelError::Compile {
        kernel: kernel.name.into(),
        arch: arch.into(),
        log: match e {
            nvrtc::CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        },
    })?;
    let text = ptx.to_src();
    if let Some(p) = path {
        let _ = cache::write_atomic(&p, &text);
    }
    Ok(text)
}
