//! Launcher for `cast.cu`: f32 <-> bf16 <-> f16 (round to nearest even), i64 -> i32 indices.

use crate::context::{need, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut};

/// y[i] = x[i] converted, for `n` elements. Same-type casts are an error (use a copy); i64 -> i32
/// maps values outside i32 to -1, which the index-taking kernels treat as invalid.
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
    let s = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr(&s);
    let (yp, _g2) = y.device_ptr_mut(&s);
    gpu.launch(OP, "cast", format!("cast_{}_{}", I::SUFFIX, O::SUFFIX))?
        .ptr(xp)
        .ptr(yp)
        .run_flat(n)
}
