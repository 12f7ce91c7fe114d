//! Launchers for `rmsnorm.cu` (`runtime::ops::rmsnorm_fwd` / `rmsnorm_bwd`).
//! x, y, dy, dx: [rows, d]; w: [d]; rstd: [rows] f32; dw: [d] f32.

use crate::context::{dim, mul, need, Elem, Gpu};
use crate::error::Result;
use cudarc::driver::{DevicePtr, DevicePtrMut};

/// `rows * d` after checking that `x` holds that many elements and `w` holds `d`.
fn checked_rows<E: Elem>(
    op: &'static str,
    x: &impl DevicePtr<E>,
    w: &impl DevicePtr<E>,
    rows: usize,
    d: usize,
) -> Result<usize> {
    let n = mul(op, rows, d)?;
    need(op, "x", x.len(), n)?;
    need(op, "w", w.len(), d)?;
    Ok(n)
}

/// The kernels' `i32` sizes, or `None` when there are no elements (nothing to launch).
fn launch_dims(op: &'static str, rows: usize, d: usize) -> Result<Option<(i32, i32)>> {
    let dims = (dim(op, "rows", rows)?, dim(op, "d", d)?);
    Ok((rows * d != 0).then_some(dims))
}

/// y = w * (x * rstd); saves rstd = 1/rms per row for the backward.
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_fwd<E: Elem>(
    gpu: &Gpu,
    x: &impl DevicePtr<E>,
    w: &impl DevicePtr<E>,
    y: &mut impl DevicePtrMut<E>,
    rstd: &mut impl DevicePtrMut<f32>,
    rows: usize,
    d: usize,
    eps: f32,
) -> Result<()> {
    const OP: &str = "rmsnorm_fwd";
    let n = checked_rows(OP, x, w, rows, d)?;
    need(OP, "y", y.len(), n)?;
    need(OP, "rstd", rstd.len(), rows)?;
    let Some((ri, di)) = launch_dims(OP, rows, d)? else {
        return Ok(());
    };
    let s = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr(&s);
    let (wp, _g2) = w.device_ptr(&s);
    let (yp, _g3) = y.device_ptr_mut(&s);
    let (rp, _g4) = rstd.device_ptr_mut(&s);
    gpu.launch(OP, "rmsnorm", format!("rmsnorm_fwd_{}", E::SUFFIX))?
        .ptr(xp)
        .ptr(wp)
        .ptr(yp)
        .ptr(rp)
        .i32(ri)
        .i32(di)
        .f32(eps)
        .run(rows as u32, (256, 1))
}

/// dx (same dtype as x; overwritten, or accumulated when `accumulate_dx`) and dw (f32,
/// **accumulated**) from the saved `rstd`.
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_bwd<E: Elem>(
    gpu: &Gpu,
    x: &impl DevicePtr<E>,
    w: &impl DevicePtr<E>,
    rstd: &impl DevicePtr<f32>,
    dy: &impl DevicePtr<E>,
    dx: &mut impl DevicePtrMut<E>,
    dw: &mut impl DevicePtrMut<f32>,
    rows: usize,
    d: usize,
    accumulate_dx: bool,
) -> Result<()> {
    const OP: &str = "rmsnorm_bwd";
    let n = checked_rows(OP, x, w, rows, d)?;
    need(OP, "rstd", rstd.len(), rows)?;
    need(OP, "dy", dy.len(), n)?;
    need(OP, "dx", dx.len(), n)?;
    need(OP, "dw", dw.len(), d)?;
    let Some((ri, di)) = launch_dims(OP, rows, d)? else {
        return Ok(());
    };
    let s = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr(&s);
    let (wp, _g2) = w.device_ptr(&s);
    let (rp, _g3) = rstd.device_ptr(&s);
    let (dyp, _g4) = dy.device_ptr(&s);
    let (dxp, _g5) = dx.device_ptr_mut(&s);
    let (dwp, _g6) = dw.device_ptr_mut(&s);
    gpu.launch(OP, "rmsnorm", format!("rmsnorm_bwd_dx_{}", E::SUFFIX))?
        .ptr(xp)
        .ptr(wp)
        .ptr(rp)
        .ptr(dyp)
        .ptr(dxp)
        .i32(ri)
        .i32(di)
        .i32(accumulate_dx as i32)
        .run(rows as u32, (256, 1))?;
    // Block (32, 8): 32 columns per block, 8 row lanes.
    gpu.launch(OP, "rmsnorm", format!("rmsnorm_bwd_dw_{}", E::SUFFIX))?
        .ptr(xp)
        .ptr(rp)
        .ptr(dyp)
        .ptr(dwp)
        .i32(ri)
        .i32(di)
        .run(d.div_ceil(32) as u32, (32, 8))
}
