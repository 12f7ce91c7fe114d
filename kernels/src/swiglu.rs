//! Launchers for `swiglu.cu`. gate, up, h and their gradients: [n].

use crate::context::{cfg, drv, need, stride_blocks, Elem, Gpu};
use crate::error::Result;
use cudarc::driver::{DevicePtr, DevicePtrMut, PushKernelArg};

/// h = silu(gate) * up.
pub fn swiglu_fwd<E: Elem>(
    gpu: &Gpu,
    gate: &impl DevicePtr<E>,
    up: &impl DevicePtr<E>,
    h: &mut impl DevicePtrMut<E>,
    n: usize,
) -> Result<()> {
    const OP: &str = "swiglu_fwd";
    need(OP, "gate", gate.len(), n)?;
    need(OP, "up", up.len(), n)?;
    need(OP, "h", h.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = gpu.function("swiglu", &format!("swiglu_fwd_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (gp, _g1) = gate.device_ptr(s);
    let (up_, _g2) = up.device_ptr(s);
    let (hp, _g3) = h.device_ptr_mut(s);
    let ni = n as i64;
    let mut b = s.launch_builder(&f);
    b.arg(&gp).arg(&up_).arg(&hp).arg(&ni);
    // SAFETY: matches swiglu_fwd_* in swiglu.cu; lengths checked above.
    unsafe { b.launch(cfg(stride_blocks(n, 256), (256, 1))) }.map_err(drv(OP))?;
    Ok(())
}

/// dgate, dup from dh.
pub fn swiglu_bwd<E: Elem>(
    gpu: &Gpu,
    gate: &impl DevicePtr<E>,
    up: &impl DevicePtr<E>,
    dh: &impl DevicePtr<E>,
    dgate: &mut impl DevicePtrMut<E>,
    dup: &mut impl DevicePtrMut<E>,
    n: usize,
) -> Result<()> {
    const OP: &str = "swiglu_bwd";
    need(OP, "gate", gate.len(), n)?;
    need(OP, "up", up.len(), n)?;
    need(OP, "dh", dh.len(), n)?;
    need(OP, "dgate", dgate.len(), n)?;
    need(OP, "dup", dup.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = gpu.function("swiglu", &format!("swiglu_bwd_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (gp, _g1) = gate.device_ptr(s);
    let (up_, _g2) = up.device_ptr(s);
    let (dhp, _g3) = dh.device_ptr(s);
    let (dgp, _g4) = dgate.device_ptr_mut(s);
    let (dup_, _g5) = dup.device_ptr_mut(s);
    let ni = n as i64;
    let mut b = s.launch_builder(&f);
    b.arg(&gp).arg(&up_).arg(&dhp).arg(&dgp).arg(&dup_).arg(&ni);
    // SAFETY: matches swiglu_bwd_* in swiglu.cu; lengths checked above.
    unsafe { b.launch(cfg(stride_blocks(n, 256), (256, 1))) }.map_err(drv(OP))?;
    Ok(())
}
