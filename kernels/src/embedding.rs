//! Launchers for `embedding.cu`. ids: [n] i32; table: [vocab, d]; out: [n, d]; dtable: [vocab, d] f32.

use crate::context::{cfg, dim, drv, mul, need, Elem, Gpu};
use crate::error::Result;
use cudarc::driver::{DevicePtr, DevicePtrMut, PushKernelArg};

/// out[i] = table[ids[i]]; an id outside `0..vocab` yields a NaN row.
pub fn embedding_fwd<E: Elem>(
    gpu: &Gpu,
    ids: &impl DevicePtr<i32>,
    table: &impl DevicePtr<E>,
    out: &mut impl DevicePtrMut<E>,
    n: usize,
    vocab: usize,
    d: usize,
) -> Result<()> {
    const OP: &str = "embedding_fwd";
    need(OP, "ids", ids.len(), n)?;
    need(OP, "table", table.len(), mul(OP, vocab, d)?)?;
    need(OP, "out", out.len(), mul(OP, n, d)?)?;
    let (ni, vi, di) = (dim(OP, "n", n)?, dim(OP, "vocab", vocab)?, dim(OP, "d", d)?);
    if n == 0 || d == 0 {
        return Ok(());
    }
    let f = gpu.function("embedding", &format!("embedding_fwd_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (ip, _g1) = ids.device_ptr(s);
    let (tp, _g2) = table.device_ptr(s);
    let (op, _g3) = out.device_ptr_mut(s);
    let mut b = s.launch_builder(&f);
    b.arg(&ip).arg(&tp).arg(&op).arg(&ni).arg(&vi).arg(&di);
    // SAFETY: matches embedding_fwd_* in embedding.cu; lengths checked above.
    unsafe { b.launch(cfg(n as u32, (256, 1))) }.map_err(drv(OP))?;
    Ok(())
}

/// dtable[ids[i]] += dout[i] (accumulates into the f32 gradient; ids outside the table skipped).
pub fn embedding_bwd<E: Elem>(
    gpu: &Gpu,
    ids: &impl DevicePtr<i32>,
    dout: &impl DevicePtr<E>,
    dtable: &mut impl DevicePtrMut<f32>,
    n: usize,
    vocab: usize,
    d: usize,
) -> Result<()> {
    const OP: &str = "embedding_bwd";
    need(OP, "ids", ids.len(), n)?;
    need(OP, "dout", dout.len(), mul(OP, n, d)?)?;
    need(OP, "dtable", dtable.len(), mul(OP, vocab, d)?)?;
    let (ni, vi, di) = (dim(OP, "n", n)?, dim(OP, "vocab", vocab)?, dim(OP, "d", d)?);
    if n == 0 || d == 0 {
        return Ok(());
    }
    let f = gpu.function("embedding", &format!("embedding_bwd_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (ip, _g1) = ids.device_ptr(s);
    let (gp, _g2) = dout.device_ptr(s);
    let (tp, _g3) = dtable.device_ptr_mut(s);
    let mut b = s.launch_builder(&f);
    b.arg(&ip).arg(&gp).arg(&tp).arg(&ni).arg(&vi).arg(&di);
    // SAFETY: matches embedding_bwd_* in embedding.cu; lengths checked above.
    unsafe { b.launch(cfg(n as u32, (256, 1))) }.map_err(drv(OP))?;
    Ok(())
}
