//! Launchers for `rmsnorm.cu`. x, y, dy, dx: [rows, d]; w: [d]; rstd: [rows] f32; dw: [d] f32.

use crate::context::{cfg, dim, drv, mul, need, Elem, Gpu};
use crate::error::Result;
use cudarc::driver::{DevicePtr, DevicePtrMut, PushKernelArg};

/// y = x / rms(x) * w; saves 1/rms per row in `rstd` for the backward.
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
    let n = mul(OP, rows, d)?;
    need(OP, "x", x.len(), n)?;
    need(OP, "w", w.len(), d)?;
    need(OP, "y", y.len(), n)?;
    need(OP, "rstd", rstd.len(), rows)?;
    let (ri, di) = (dim(OP, "rows", rows)?, dim(OP, "d", d)?);
    if n == 0 {
        return Ok(());
    }
    let f = gpu.function("rmsnorm", &format!("rmsnorm_fwd_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (xp, _g1) = x.device_ptr(s);
    let (wp, _g2) = w.device_ptr(s);
    let (yp, _g3) = y.device_ptr_mut(s);
    let (rp, _g4) = rstd.device_ptr_mut(s);
    let mut b = s.launch_builder(&f);
    b.arg(&xp)
        .arg(&wp)
        .arg(&yp)
        .arg(&rp)
        .arg(&ri)
        .arg(&di)
        .arg(&eps);
    // SAFETY: argument order and types match rmsnorm_fwd_* in rmsnorm.cu; lengths checked above.
    unsafe { b.launch(cfg(rows as u32, (256, 1))) }.map_err(drv(OP))?;
    Ok(())
}

/// dx (same dtype as x) and dw (f32, overwritten) from the saved `rstd`.
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
) -> Result<()> {
    const OP: &str = "rmsnorm_bwd";
    let n = mul(OP, rows, d)?;
    need(OP, "x", x.len(), n)?;
    need(OP, "w", w.len(), d)?;
    need(OP, "rstd", rstd.len(), rows)?;
    need(OP, "dy", dy.len(), n)?;
    need(OP, "dx", dx.len(), n)?;
    need(OP, "dw", dw.len(), d)?;
    let (ri, di) = (dim(OP, "rows", rows)?, dim(OP, "d", d)?);
    if n == 0 {
        return Ok(());
    }
    let fdx = gpu.function("rmsnorm", &format!("rmsnorm_bwd_dx_{}", E::SUFFIX))?;
    let fdw = gpu.function("rmsnorm", &format!("rmsnorm_bwd_dw_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (xp, _g1) = x.device_ptr(s);
    let (wp, _g2) = w.device_ptr(s);
    let (rp, _g3) = rstd.device_ptr(s);
    let (dyp, _g4) = dy.device_ptr(s);
    let (dxp, _g5) = dx.device_ptr_mut(s);
    let (dwp, _g6) = dw.device_ptr_mut(s);
    let mut b = s.launch_builder(&fdx);
    b.arg(&xp)
        .arg(&wp)
        .arg(&rp)
        .arg(&dyp)
        .arg(&dxp)
        .arg(&ri)
        .arg(&di);
    // SAFETY: matches rmsnorm_bwd_dx_* in rmsnorm.cu; lengths checked above.
    unsafe { b.launch(cfg(rows as u32, (256, 1))) }.map_err(drv(OP))?;
    let mut b = s.launch_builder(&fdw);
    b.arg(&xp).arg(&rp).arg(&dyp).arg(&dwp).arg(&ri).arg(&di);
    // SAFETY: matches rmsnorm_bwd_dw_* (block 32 x 8) in rmsnorm.cu; lengths checked above.
    unsafe { b.launch(cfg(d.div_ceil(32) as u32, (32, 8))) }.map_err(drv(OP))?;
    Ok(())
}
