//! Launchers for `swiglu.cu` (`runtime::ops::swiglu_fwd` / `swiglu_bwd`): gate, up, h and their
//! gradients, n elements each.

use crate::context::{need, Elem, Gpu};
use crate::error::Result;
use cudarc::driver::{DevicePtr, DevicePtrMut};

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
    let s = gpu.stream().clone();
    let (gp, _g1) = gate.device_ptr(&s);
    let (upp, _g2) = up.device_ptr(&s);
    let (hp, _g3) = h.device_ptr_mut(&s);
    gpu.launch(OP, "swiglu", format!("swiglu_fwd_{}", E::SUFFIX))?
        .ptr(gp)
        .ptr(upp)
        .ptr(hp)
        .run_flat(n)
}

/// dgate = dh * up * silu'(gate), dup = dh * silu(gate), both overwritten.
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
    let s = gpu.stream().clone();
    let (gp, _g1) = gate.device_ptr(&s);
    let (upp, _g2) = up.device_ptr(&s);
    let (dhp, _g3) = dh.device_ptr(&s);
    let (dgp, _g4) = dgate.device_ptr_mut(&s);
    let (dupp, _g5) = dup.device_ptr_mut(&s);
    gpu.launch(OP, "swiglu", format!("swiglu_bwd_{}", E::SUFFIX))?
        .ptr(gp)
        .ptr(upp)
        .ptr(dhp)
        .ptr(dgp)
        .ptr(dupp)
        .run_flat(n)
}
