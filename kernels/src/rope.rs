//! Launchers for `rope.cu`. x, y: [tokens, heads, head_dim]; pos: [tokens] i32; tables from
//! [`crate::rope_tables`], uploaded once with [`DeviceRopeTables::upload`].

use crate::context::{cfg, dim, drv, mul, need, stride_blocks, Elem, Gpu};
use crate::error::{shape, Result};
use crate::rope_tables::RopeTables;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, PushKernelArg};

/// cos/sin tables resident on the device.
pub struct DeviceRopeTables {
    pub head_dim: usize,
    pub max_pos: usize,
    cos: CudaSlice<f32>,
    sin: CudaSlice<f32>,
}

impl DeviceRopeTables {
    pub fn upload(gpu: &Gpu, t: &RopeTables) -> Result<Self> {
        let s = gpu.stream();
        Ok(Self {
            head_dim: t.head_dim,
            max_pos: t.max_pos,
            cos: s.clone_htod(&t.cos).map_err(drv("rope tables upload"))?,
            sin: s.clone_htod(&t.sin).map_err(drv("rope tables upload"))?,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn launch<E: Elem>(
    gpu: &Gpu,
    op: &'static str,
    xp: u64,
    yp: u64,
    pos: &impl DevicePtr<i32>,
    t: &DeviceRopeTables,
    tokens: usize,
    heads: usize,
    sign: f32,
) -> Result<()> {
    need(op, "pos", pos.len(), tokens)?;
    let pairs = mul(op, mul(op, tokens, heads)?, t.head_dim / 2)?;
    let (ti, hi, di, mi) = (
        dim(op, "tokens", tokens)?,
        dim(op, "heads", heads)?,
        dim(op, "head_dim", t.head_dim)?,
        dim(op, "max_pos", t.max_pos)?,
    );
    if pairs == 0 {
        return Ok(());
    }
    let f = gpu.function("rope", &format!("rope_{}", E::SUFFIX))?;
    let s = gpu.stream();
    let (pp, _g1) = pos.device_ptr(s);
    let (cp, _g2) = t.cos.device_ptr(s);
    let (sp, _g3) = t.sin.device_ptr(s);
    let mut b = s.launch_builder(&f);
    b.arg(&xp)
        .arg(&yp)
        .arg(&pp)
        .arg(&cp)
        .arg(&sp)
        .arg(&ti)
        .arg(&hi)
        .arg(&di)
        .arg(&mi)
        .arg(&sign);
    // SAFETY: matches rope_* in rope.cu; the caller checked x/y lengths, pos and tables here.
    unsafe { b.launch(cfg(stride_blocks(pairs, 256), (256, 1))) }.map_err(drv(op))?;
    Ok(())
}

fn check(
    op: &'static str,
    x: usize,
    y: usize,
    t: &DeviceRopeTables,
    tokens: usize,
    heads: usize,
) -> Result<()> {
    if !t.head_dim.is_multiple_of(2) {
        return Err(shape(op, format!("head_dim {} is odd", t.head_dim)));
    }
    let n = mul(op, mul(op, tokens, heads)?, t.head_dim)?;
    need(op, "x", x, n)?;
    need(op, "y", y, n)
}

/// y = rotate(x, +angle(pos)). A position outside the table writes NaN.
pub fn rope_fwd<E: Elem>(
    gpu: &Gpu,
    x: &impl DevicePtr<E>,
    y: &mut impl DevicePtrMut<E>,
    pos: &impl DevicePtr<i32>,
    t: &DeviceRopeTables,
    tokens: usize,
    heads: usize,
) -> Result<()> {
    check("rope_fwd", x.len(), y.len(), t, tokens, heads)?;
    let s = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr(&s);
    let (yp, _g2) = y.device_ptr_mut(&s);
    launch::<E>(gpu, "rope_fwd", xp, yp, pos, t, tokens, heads, 1.0)
}

/// dx = rotate(dy, -angle(pos)): the transpose of the forward rotation.
pub fn rope_bwd<E: Elem>(
    gpu: &Gpu,
    dy: &impl DevicePtr<E>,
    dx: &mut impl DevicePtrMut<E>,
    pos: &impl DevicePtr<i32>,
    t: &DeviceRopeTables,
    tokens: usize,
    heads: usize,
) -> Result<()> {
    check("rope_bwd", dy.len(), dx.len(), t, tokens, heads)?;
    let s = gpu.stream().clone();
    let (xp, _g1) = dy.device_ptr(&s);
    let (yp, _g2) = dx.device_ptr_mut(&s);
    launch::<E>(gpu, "rope_bwd", xp, yp, pos, t, tokens, heads, -1.0)
}

/// In-place forward (`sign` = 1.0) or backward (`sign` = -1.0) rotation of `x`.
pub fn rope_inplace<E: Elem>(
    gpu: &Gpu,
    x: &mut impl DevicePtrMut<E>,
    pos: &impl DevicePtr<i32>,
    t: &DeviceRopeTables,
    tokens: usize,
    heads: usize,
    backward: bool,
) -> Result<()> {
    check("rope_inplace", x.len(), x.len(), t, tokens, heads)?;
    let s = gpu.stream().clone();
    let (xp, _g1) = x.device_ptr_mut(&s);
    let sign = if backward { -1.0 } else { 1.0 };
    launch::<E>(gpu, "rope_inplace", xp, xp, pos, t, tokens, heads, sign)
}
