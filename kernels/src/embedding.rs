//! Launchers for `embedding.cu` (`runtime::ops::embedding_fwd` / `embedding_bwd`).
//! ids: [n] i32; table: [vocab, d]; out: [n, d]; dtable: [vocab, d] f32.

use crate::context::{dim, mul, need, Elem, Gpu};
use crate::error::Result;
use cudarc::driver::{DevicePtr, DevicePtrMut};

/// out[i] = table[ids[i]]; an id outside `0..vocab` yields a NaN row (the CPU op errors).
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
    let s = gpu.stream().clone();
    let (ip, _g1) = ids.device_ptr(&s);
    let (tp, _g2) = table.device_ptr(&s);
    let (op, _g3) = out.device_ptr_mut(&s);
    gpu.launch(OP, "embedding", format!("embedding_fwd_{}", E::SUFFIX))?
        .ptr(ip)
        .ptr(tp)
        .ptr(op)
        .i32(ni)
        .i32(vi)
        .i32(di)
        .run(n as u32, (256, 1))
}

/// dtable[ids[i]] += dout[i] (**accumulates** into the f32 gradient; ids outside the table are
/// skipped).
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
    let s = gpu.stream().clone();
    let (ip, _g1) = ids.device_ptr(&s);
    let (gp, _g2) = dout.device_ptr(&s);
    let (tp, _g3) = dtable.device_ptr_mut(&s);
    gpu.launch(OP, "embedding", format!("embedding_bwd_{}", E::SUFFIX))?
        .ptr(ip)
        .ptr(gp)
        .ptr(tp)
        .i32(ni)
        .i32(vi)
        .i32(di)
        .run(n as u32, (256, 1))
}
