//! Launchers for `adamw.cu`: one tensor per launch (`runtime::ops::adamw_step`), or a whole
//! parameter set in one launch ([`AdamwGroup`]).

use crate::context::{dim, drv, need, stride_blocks, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

/// Elements one block of `adamw_multi` updates; must equal ADAMW_CHUNK in adamw.cu.
const CHUNK: usize = 4096;

/// PyTorch AdamW hyper-parameters of one step (the runtime's `AdamWParams`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamwHyper {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 1-based, for bias correction.
    pub step: u64,
    /// Multiplies every gradient first (global-norm clipping); 1.0 for none.
    pub grad_scale: f32,
}

impl AdamwHyper {
    /// (decay, step_size, inv_sqrt_bc2) computed as the runtime's CPU op does.
    fn derived(&self, op: &'static str) -> Result<(f32, f32, f32)> {
        if self.step == 0 {
            return Err(shape(op, "step is 1-based; got 0"));
        }
        let e = self.step.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - (self.beta1 as f64).powi(e);
        let bc2 = 1.0 - (self.beta2 as f64).powi(e);
        Ok((
            1.0 - self.lr * self.weight_decay,
            (self.lr as f64 / bc1) as f32,
            (1.0 / bc2.sqrt()) as f32,
        ))
    }
}

/// One AdamW step on `n` elements: param, m, v f32 in place; grad and the optional copy of the
/// updated weights in `E`.
#[allow(clippy::too_many_arguments)]
pub fn adamw<E: Elem>(
    gpu: &Gpu,
    h: &AdamwHyper,
    param: &mut impl DevicePtrMut<f32>,
    grad: &impl DevicePtr<E>,
    m: &mut impl DevicePtrMut<f32>,
    v: &mut impl DevicePtrMut<f32>,
    copy: Option<&mut dyn DevicePtrMut<E>>,
    n: usize,
) -> Result<()> {
    const OP: &str = "adamw";
    let (decay, step_size, inv_sqrt_bc2) = h.derived(OP)?;
    need(OP, "param", param.len(), n)?;
    need(OP, "grad", grad.len(), n)?;
    need(OP, "m", m.len(), n)?;
    need(OP, "v", v.len(), n)?;
    if let Some(c) = &copy {
        need(OP, "copy", c.len(), n)?;
    }
    if n == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (pp, _g1) = param.device_ptr_mut(&s);
    let (gp, _g2) = grad.device_ptr(&s);
    let (mp, _g3) = m.device_ptr_mut(&s);
    let (vp, _g4) = v.device_ptr_mut(&s);
    let (cp, _g5) = match copy {
        Some(c) => {
            let (p, guard) = c.device_ptr_mut(&s);
            (p, Some(guard))
        }
        None => (0u64, None),
    };
    gpu.launch(OP, "adamw", format!("adamw_{}", E::SUFFIX))?
        .ptr(pp)
        .ptr(gp)
        .ptr(mp)
        .ptr(vp)
        .ptr(cp)
        .i64(n as i64)
        .f32(h.beta1)
        .f32(h.beta2)
        .f32(h.eps)
        .f32(decay)
        .f32(step_size)
        .f32(inv_sqrt_bc2)
        .f32(h.grad_scale)
        .run(stride_blocks(n, 256), (256, 1))
}

/// Raw device addresses of one parameter's f32 buffers (each `len` elements) and an optional
/// bf16 copy refreshed after the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdamwTensor {
    pub param: u64,
    pub grad: u64,
    pub m: u64,
    pub v: u64,
    pub param_bf16: Option<u64>,
    pub len: usize,
}

/// Tensor and chunk tables uploaded once for a fixed parameter set: one launch per step.
pub struct AdamwGroup {
    tensors: CudaSlice<u64>,
    chunks: CudaSlice<i64>,
    nchunks: i32,
}

impl AdamwGroup {
    /// # Safety
    /// Every address must point to a live device allocation of `len` elements of its type on
    /// this `gpu`'s context, for as long as the group is stepped.
    pub unsafe fn new(gpu: &Gpu, tensors: &[AdamwTensor]) -> Result<Self> {
        const OP: &str = "adamw_group";
        let mut table = Vec::with_capacity(tensors.len() * 6);
        let mut chunks = Vec::new();
        for (i, t) in tensors.iter().enumerate() {
            if [t.param, t.grad, t.m, t.v].contains(&0) {
                return Err(shape(OP, format!("tensor {i} has a null buffer")));
            }
            table.extend_from_slice(&[
                t.param,
                t.grad,
                t.m,
                t.v,
                t.param_bf16.unwrap_or(0),
                t.len as u64,
            ]);
            for start in (0..t.len).step_by(CHUNK) {
                chunks.extend_from_slice(&[i as i64, start as i64]);
            }
        }
        let nchunks = dim(OP, "chunks", chunks.len() / 2)?;
        // An empty group still gets valid one-element tables.
        table.resize(table.len().max(1), 0);
        chunks.resize(chunks.len().max(2), 0);
        let s = gpu.stream();
        Ok(Self {
            tensors: s.clone_htod(&table).map_err(drv(OP))?,
            chunks: s.clone_htod(&chunks).map_err(drv(OP))?,
            nchunks,
        })
    }

    /// One AdamW step over every tensor of the group.
    pub fn step(&self, gpu: &Gpu, h: &AdamwHyper) -> Result<()> {
        const OP: &str = "adamw_multi";
        let (decay, step_size, inv_sqrt_bc2) = h.derived(OP)?;
        if self.nchunks == 0 {
            return Ok(());
        }
        let s = gpu.stream().clone();
        let (tp, _g1) = self.tensors.device_ptr(&s);
        let (cp, _g2) = self.chunks.device_ptr(&s);
        // Tables: AdamwTensor = 6 x 8 bytes, AdamwChunk = 2 x 8 (adamw.cu); the addresses in
        // them were vouched for in `new`.
        gpu.launch(OP, "adamw", "adamw_multi".into())?
            .ptr(tp)
            .ptr(cp)
            .i32(self.nchunks)
            .f32(h.beta1)
            .f32(h.beta2)
            .f32(h.eps)
            .f32(decay)
            .f32(step_size)
            .f32(inv_sqrt_bc2)
            .f32(h.grad_scale)
            .run(self.nchunks as u32, (256, 1))
    }
}
