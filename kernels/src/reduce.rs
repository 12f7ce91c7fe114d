//! Launchers for `reduce.cu`: deterministic sums and the global L2 norm of many tensors.
//! Each tensor gets a fixed number of partial blocks, so results do not depend on timing.

use crate::context::{dim, need, Elem, Gpu};
use crate::error::Result;
use cudarc::driver::{DevicePtr, DevicePtrMut};

const THREADS: u32 = 256;
const MAX_PARTIALS: usize = 1024;

/// Partial sums one tensor of `n` elements writes.
pub fn partial_blocks(n: usize) -> usize {
    n.div_ceil(THREADS as usize).clamp(1, MAX_PARTIALS)
}

/// f32 scratch elements [`global_norm`] needs for tensors of these lengths.
pub fn scratch_len(lens: &[usize]) -> usize {
    lens.iter().map(|&n| partial_blocks(n)).sum()
}

fn partial<E: Elem>(
    gpu: &Gpu,
    square: bool,
    x: &dyn DevicePtr<E>,
    n: usize,
    dst: u64,
) -> Result<()> {
    let op = if square {
        "sumsq_partial"
    } else {
        "sum_partial"
    };
    need(op, "x", x.len(), n)?;
    let s = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr(&s);
    // dst has partial_blocks(n) slots: one per block of this fixed grid.
    gpu.launch(op, "reduce", format!("{op}_{}", E::SUFFIX))?
        .ptr(xp)
        .i64(n as i64)
        .ptr(dst)
        .run(partial_blocks(n) as u32, (THREADS, 1))
}

fn finish(
    gpu: &Gpu,
    scratch: u64,
    count: usize,
    out: &mut impl DevicePtrMut<f32>,
    sqrt: bool,
) -> Result<()> {
    const OP: &str = "reduce_final";
    need(OP, "out", out.len(), 1)?;
    let s = gpu.stream().clone();
    let (op, _g1) = out.device_ptr_mut(&s);
    gpu.launch(OP, "reduce", "reduce_final".into())?
        .ptr(scratch)
        .i32(dim(OP, "partials", count)?)
        .ptr(op)
        .i32(sqrt as i32)
        .run(1, (1024, 1))
}

/// out[0] = sum of the first `n` elements of x (f32 accumulation).
pub fn sum<E: Elem>(
    gpu: &Gpu,
    x: &impl DevicePtr<E>,
    n: usize,
    scratch: &mut impl DevicePtrMut<f32>,
    out: &mut impl DevicePtrMut<f32>,
) -> Result<()> {
    need("sum", "scratch", scratch.len(), partial_blocks(n))?;
    let s = gpu.stream().clone();
    let (sp, _g) = scratch.device_ptr_mut(&s);
    partial::<E>(gpu, false, x, n, sp)?;
    finish(gpu, sp, partial_blocks(n), out, false)
}

/// out[0] = sqrt(sum over tensors of sum(x^2)): the gradient-clipping norm, in one final pass.
pub fn global_norm<E: Elem>(
    gpu: &Gpu,
    xs: &[&dyn DevicePtr<E>],
    scratch: &mut impl DevicePtrMut<f32>,
    out: &mut impl DevicePtrMut<f32>,
) -> Result<()> {
    let lens: Vec<usize> = xs.iter().map(|x| x.len()).collect();
    let total = scratch_len(&lens);
    need("global_norm", "scratch", scratch.len(), total)?;
    let s = gpu.stream().clone();
    let (sp, _g) = scratch.device_ptr_mut(&s);
    let mut at = 0usize;
    for (x, &n) in xs.iter().zip(&lens) {
        partial::<E>(gpu, true, *x, n, sp + (at * 4) as u64)?;
        at += partial_blocks(n);
    }
    finish(gpu, sp, total, out, true)
}
