//! Launcher for `cast.cu`: f32 <-> bf16 <-> f16, round to nearest even.

use crate::context::{cfg, drv, need, stride_blocks, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut, PushKernelArg};

/// y[i] = x[i] converted, for `n` elements. Same-type casts are an error (use a copy).
pub fn cast<I: Elem, O: Elem>(
    gpu: &Gpu,
    x: &impl DevicePtr<I>,
    y: &mut impl DevicePtrMut<O>,
    n: usize,
) -> Result<()> {
    const OP: &str = "cast";
    if I::SUFFIX == O::SUFFIX {
        return Err(shape(
            OP,
            format!("{} to {} is not a cast", I::SUFFIX, O::SUFFIX),
        ));
    }
    need(OP, "x", x.len(), n)?;
    need(OP, "y", y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = gpu.function("cast", &format!("cast_{}_{}", I::SUFFIX, O::SUFFIX))?;
    let s = gpu.stream();
    let (xp, _g1) = x.device_ptr(s);
    let (yp, _g2) = y.device_ptr_mut(s);
    let ni = n as i64;
    let mut b = s.launch_builder(&f);
    b.arg(&xp).arg(&yp).arg(&ni);
    // SAFETY: matches cast_<in>_<out> in cast.cu; lengths checked above.
    unsafe { b.launch(cfg(stride_blocks(n, 256), (256, 1))) }.map_err(drv(OP))?;
    Ok(())
}
