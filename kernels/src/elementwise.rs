//! Launchers for `elementwise.cu`: add, mul, scale, axpy (one dtype, n elements) and the
//! KV-cache row write, as `runtime::ops` defines them.

use crate::context::{dim, mul, need, stride_blocks, Elem, Gpu};
use crate::error::Result;
use cudarc::driver::{DevicePtr, DevicePtrMut};

fn binary<E: Elem>(
    gpu: &Gpu,
    op: &'static str,
    a: &impl DevicePtr<E>,
    b: &impl DevicePtr<E>,
    out: &mut impl DevicePtrMut<E>,
    n: usize,
) -> Result<()> {
    need(op, "a", a.len(), n)?;
    need(op, "b", b.len(), n)?;
    need(op, "out", out.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (ap, _g1) = a.device_ptr(&s);
    let (bp, _g2) = b.device_ptr(&s);
    let (outp, _g3) = out.device_ptr_mut(&s);
    gpu.launch(op, "elementwise", format!("{op}_{}", E::SUFFIX))?
        .ptr(ap)
        .ptr(bp)
        .ptr(outp)
        .run_flat(n)
}

/// out = a + b.
pub fn add<E: Elem>(
    gpu: &Gpu,
    a: &impl DevicePtr<E>,
    b: &impl DevicePtr<E>,
    out: &mut impl DevicePtrMut<E>,
    n: usize,
) -> Result<()> {
    binary(gpu, "add", a, b, out, n)
}

/// out = a * b.
pub fn mul_elem<E: Elem>(
    gpu: &Gpu,
    a: &impl DevicePtr<E>,
    b: &impl DevicePtr<E>,
    out: &mut impl DevicePtrMut<E>,
    n: usize,
) -> Result<()> {
    binary(gpu, "mul", a, b, out, n)
}

fn scale_ptrs<E: Elem>(gpu: &Gpu, xp: u64, op: u64, s_: f32, n: usize) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    gpu.launch("scale", "elementwise", format!("scale_{}", E::SUFFIX))?
        .ptr(xp)
        .ptr(op)
        .f32(s_)
        .run_flat(n)
}

/// out = s * x.
pub fn scale<E: Elem>(
    gpu: &Gpu,
    x: &impl DevicePtr<E>,
    out: &mut impl DevicePtrMut<E>,
    s: f32,
    n: usize,
) -> Result<()> {
    need("scale", "x", x.len(), n)?;
    need("scale", "out", out.len(), n)?;
    let st = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr(&st);
    let (op, _g2) = out.device_ptr_mut(&st);
    scale_ptrs::<E>(gpu, xp, op, s, n)
}

/// x *= s.
pub fn scale_inplace<E: Elem>(
    gpu: &Gpu,
    x: &mut impl DevicePtrMut<E>,
    s: f32,
    n: usize,
) -> Result<()> {
    need("scale_inplace", "x", x.len(), n)?;
    let st = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr_mut(&st);
    scale_ptrs::<E>(gpu, xp, xp, s, n)
}

/// y += alpha * x.
pub fn axpy<E: Elem>(
    gpu: &Gpu,
    y: &mut impl DevicePtrMut<E>,
    alpha: f32,
    x: &impl DevicePtr<E>,
    n: usize,
) -> Result<()> {
    const OP: &str = "axpy";
    need(OP, "y", y.len(), n)?;
    need(OP, "x", x.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (yp, _g1) = y.device_ptr_mut(&s);
    let (xp, _g2) = x.device_ptr(&s);
    gpu.launch(OP, "elementwise", format!("axpy_{}", E::SUFFIX))?
        .ptr(yp)
        .f32(alpha)
        .ptr(xp)
        .run_flat(n)
}

/// Writes `new` [batch, t, row] into `cache` [batch, s_max, row] at rows starts[b] .. starts[b]+t;
/// rows that would land outside the cache are skipped (the runtime's CPU op errors there).
#[allow(clippy::too_many_arguments)]
pub fn kv_cache_write<E: Elem>(
    gpu: &Gpu,
    cache: &mut impl DevicePtrMut<E>,
    new: &impl DevicePtr<E>,
    starts: &impl DevicePtr<i32>,
    batch: usize,
    t: usize,
    s_max: usize,
    row: usize,
) -> Result<()> {
    const OP: &str = "kv_cache_write";
    need(
        OP,
        "cache",
        cache.len(),
        mul(OP, mul(OP, batch, s_max)?, row)?,
    )?;
    let n = mul(OP, mul(OP, batch, t)?, row)?;
    need(OP, "new", new.len(), n)?;
    need(OP, "starts", starts.len(), batch)?;
    let (bi, ti, si) = (
        dim(OP, "batch", batch)?,
        dim(OP, "t", t)?,
        dim(OP, "s_max", s_max)?,
    );
    if n == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (cp, _g1) = cache.device_ptr_mut(&s);
    let (np, _g2) = new.device_ptr(&s);
    let (sp, _g3) = starts.device_ptr(&s);
    // The kernel bounds every destination row by s_max.
    gpu.launch(OP, "elementwise", format!("kv_cache_write_{}", E::SUFFIX))?
        .ptr(cp)
        .ptr(np)
        .ptr(sp)
        .i32(bi)
        .i32(ti)
        .i32(si)
        .i64(row as i64)
        .run(stride_blocks(n, 256), (256, 1))
}
