//! Launcher for `adamw.cu`: one launch updates every parameter tensor of a group.

use crate::context::{cfg, dim, drv, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// Elements one block updates; must equal ADAMW_CHUNK in adamw.cu.
const CHUNK: usize = 4096;

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

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamwHyper {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// Tensor and chunk tables uploaded once for a fixed parameter set.
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
        if nchunks as u64 > u32::MAX as u64 / 2 {
            return Err(shape(OP, "too many chunks"));
        }
        let s = gpu.stream();
        let upload = |e| drv(OP)(e);
        // An empty group still needs valid (1-element) tables to launch nothing against.
        table.resize(table.len().max(1), 0);
        chunks.resize(chunks.len().max(2), 0);
        Ok(Self {
            tensors: s.clone_htod(&table).map_err(upload)?,
            chunks: s.clone_htod(&chunks).map_err(upload)?,
            nchunks,
        })
    }

    /// One AdamW step; `step` counts from 1 (bias correction), `grad_scale` multiplies every
    /// gradient first (global-norm clipping).
    pub fn step(&self, gpu: &Gpu, h: &AdamwHyper, step: u64, grad_scale: f32) -> Result<()> {
        const OP: &str = "adamw_step";
        if step == 0 {
            return Err(shape(OP, "step counts from 1"));
        }
        if self.nchunks == 0 {
            return Ok(());
        }
        let e = i32::try_from(step).unwrap_or(i32::MAX);
        let bc1 = 1.0 - (h.beta1 as f64).powi(e);
        let bc2 = 1.0 - (h.beta2 as f64).powi(e);
        let (bc1, bc2) = (bc1 as f32, bc2 as f32);
        let f = gpu.function("adamw", "adamw_step")?;
        let s = gpu.stream();
        let mut b = s.launch_builder(&f);
        b.arg(&self.tensors).arg(&self.chunks).arg(&self.nchunks);
        b.arg(&h.lr)
            .arg(&h.beta1)
            .arg(&h.beta2)
            .arg(&h.eps)
            .arg(&h.weight_decay);
        b.arg(&bc1).arg(&bc2).arg(&grad_scale);
        // SAFETY: matches adamw_step in adamw.cu (AdamwTensor = 6 x 8 bytes, AdamwChunk = 2 x 8);
        // the addresses were vouched for in `new`.
        unsafe { b.launch(cfg(self.nchunks as u32, (256, 1))) }.map_err(drv(OP))?;
        Ok(())
    }
}
