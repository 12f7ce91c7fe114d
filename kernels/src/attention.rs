//! Launchers for `attention.cu`: causal GQA attention, forward saving the log-sum-exp, and the
//! backward, as `runtime::ops::attention_fwd` / `attention_bwd` / `attention_decode`.
//! q/out/dout/dq: [B, T, Hq, D]; k/v/dk/dv: [B, S, Hkv, D]; lse/delta: [B, Hq, T] f32;
//! key_valid: [B, S] i32 (nonzero = attend), optional; kv_lens: [B] i32 fill levels, optional
//! (query t of sequence b then sits at kv_lens[b] - T + t instead of q_offset + t).

use crate::context::{dim, mul, need, Elem, Gpu};
use crate::error::{shape, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnShape {
    pub batch: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Absolute position of query 0 (kv_len - q_len when decoding with a KV cache).
    pub q_offset: usize,
    /// Score scale, usually 1/sqrt(head_dim).
    pub scale: f32,
}

/// Largest head_dim the one-warp-per-row kernels hold in registers.
pub const MAX_HEAD_DIM: usize = 256;

struct Dims {
    ints: [i32; 7],
    q: usize,
    kv: usize,
    rows: usize,
}

impl AttnShape {
    fn check(&self, op: &'static str) -> Result<Dims> {
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(shape(
                op,
                format!(
                    "n_kv_heads {} must divide n_heads {}",
                    self.n_kv_heads, self.n_heads
                ),
            ));
        }
        if self.head_dim == 0 || self.head_dim > MAX_HEAD_DIM {
            return Err(shape(
                op,
                format!("head_dim {} must be in 1..={MAX_HEAD_DIM}", self.head_dim),
            ));
        }
        let q = mul(
            op,
            mul(op, mul(op, self.batch, self.q_len)?, self.n_heads)?,
            self.head_dim,
        )?;
        let kv = mul(
            op,
            mul(op, mul(op, self.batch, self.kv_len)?, self.n_kv_heads)?,
            self.head_dim,
        )?;
        let rows = mul(op, mul(op, self.batch, self.n_heads)?, self.q_len)?;
        let ints = [
            dim(op, "batch", self.batch)?,
            dim(op, "q_len", self.q_len)?,
            dim(op, "kv_len", self.kv_len)?,
            dim(op, "n_heads", self.n_heads)?,
            dim(op, "n_kv_heads", self.n_kv_heads)?,
            dim(op, "head_dim", self.head_dim)?,
            dim(op, "q_offset", self.q_offset)?,
        ];
        dim(
            op,
            "rows",
            rows.max(self.batch * self.n_kv_heads * self.kv_len),
        )?;
        Ok(Dims { ints, q, kv, rows })
    }
}

/// Warps of 32 threads, four per 128-thread block.
fn warp_blocks(warps: usize) -> u32 {
    warps.div_ceil(4).max(1) as u32
}

/// Optional [B, S] mask and [B] fill levels as raw pointers (0 = absent). The guards are dropped
/// at once: they only order work across streams, and the launchers use the one stream.
fn optional_ptrs(
    op: &'static str,
    a: &AttnShape,
    mask: Option<&dyn DevicePtr<i32>>,
    kv_lens: Option<&dyn DevicePtr<i32>>,
    gpu: &Gpu,
) -> Result<(u64, u64)> {
    let mut out = (0, 0);
    if let Some(m) = mask {
        need(op, "key_valid", m.len(), a.batch * a.kv_len)?;
        out.0 = m.device_ptr(gpu.stream()).0;
    }
    if let Some(l) = kv_lens {
        need(op, "kv_lens", l.len(), a.batch)?;
        out.1 = l.device_ptr(gpu.stream()).0;
    }
    Ok(out)
}

/// out = softmax(q k^T * scale, causal + key mask) v; lse (optional) saved for the backward.
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd<E: Elem>(
    gpu: &Gpu,
    a: &AttnShape,
    q: &impl DevicePtr<E>,
    k: &impl DevicePtr<E>,
    v: &impl DevicePtr<E>,
    key_valid: Option<&dyn DevicePtr<i32>>,
    kv_lens: Option<&dyn DevicePtr<i32>>,
    out: &mut impl DevicePtrMut<E>,
    lse: Option<&mut dyn DevicePtrMut<f32>>,
) -> Result<()> {
    const OP: &str = "attention_fwd";
    let d = a.check(OP)?;
    need(OP, "q", q.len(), d.q)?;
    need(OP, "k", k.len(), d.kv)?;
    need(OP, "v", v.len(), d.kv)?;
    need(OP, "out", out.len(), d.q)?;
    if let Some(l) = &lse {
        need(OP, "lse", l.len(), d.rows)?;
    }
    let (mp, lens) = optional_ptrs(OP, a, key_valid, kv_lens, gpu)?;
    if d.rows == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (qp, _g1) = q.device_ptr(&s);
    let (kp, _g2) = k.device_ptr(&s);
    let (vp, _g3) = v.device_ptr(&s);
    let (op, _g4) = out.device_ptr_mut(&s);
    let (lp, _g5) = match lse {
        Some(l) => {
            let (p, guard) = l.device_ptr_mut(&s);
            (p, Some(guard))
        }
        None => (0u64, None),
    };
    let l = gpu.launch(OP, "attention", format!("attention_fwd_{}", E::SUFFIX))?;
    let l = l.ptr(qp).ptr(kp).ptr(vp).ptr(mp).ptr(lens).ptr(op).ptr(lp);
    d.ints
        .iter()
        .fold(l, |l, &x| l.i32(x))
        .f32(a.scale)
        .run(warp_blocks(d.rows), (128, 1))
}

/// dq, dk, dv (overwritten). `delta` is [B, Hq, T] f32 scratch.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd<E: Elem>(
    gpu: &Gpu,
    a: &AttnShape,
    q: &impl DevicePtr<E>,
    k: &impl DevicePtr<E>,
    v: &impl DevicePtr<E>,
    key_valid: Option<&dyn DevicePtr<i32>>,
    kv_lens: Option<&dyn DevicePtr<i32>>,
    out: &impl DevicePtr<E>,
    dout: &impl DevicePtr<E>,
    lse: &impl DevicePtr<f32>,
    delta: &mut impl DevicePtrMut<f32>,
    dq: &mut impl DevicePtrMut<E>,
    dk: &mut impl DevicePtrMut<E>,
    dv: &mut impl DevicePtrMut<E>,
) -> Result<()> {
    const OP: &str = "attention_bwd";
    let d = a.check(OP)?;
    for (name, len, want) in [
        ("q", q.len(), d.q),
        ("out", out.len(), d.q),
        ("dout", dout.len(), d.q),
        ("dq", dq.len(), d.q),
        ("k", k.len(), d.kv),
        ("v", v.len(), d.kv),
        ("dk", dk.len(), d.kv),
        ("dv", dv.len(), d.kv),
        ("lse", lse.len(), d.rows),
        ("delta", delta.len(), d.rows),
    ] {
        need(OP, name, len, want)?;
    }
    let (mp, lens) = optional_ptrs(OP, a, key_valid, kv_lens, gpu)?;
    let kv_rows = a.batch * a.n_kv_heads * a.kv_len;
    if d.rows == 0 && kv_rows == 0 {
        return Ok(());
    }
    let s = gpu.stream().clone();
    let (qp, _g1) = q.device_ptr(&s);
    let (kp, _g2) = k.device_ptr(&s);
    let (vp, _g3) = v.device_ptr(&s);
    let (op, _g4) = out.device_ptr(&s);
    let (dop, _g5) = dout.device_ptr(&s);
    let (lp, _g6) = lse.device_ptr(&s);
    let (dlp, _g7) = delta.device_ptr_mut(&s);
    let (dqp, _g8) = dq.device_ptr_mut(&s);
    let (dkp, _g9) = dk.device_ptr_mut(&s);
    let (dvp, _g10) = dv.device_ptr_mut(&s);
    if d.rows > 0 {
        let l = gpu.launch(OP, "attention", format!("attention_bwd_dq_{}", E::SUFFIX))?;
        let l = l
            .ptr(qp)
            .ptr(kp)
            .ptr(vp)
            .ptr(mp)
            .ptr(lens)
            .ptr(op)
            .ptr(dop)
            .ptr(lp)
            .ptr(dlp)
            .ptr(dqp);
        d.ints
            .iter()
            .fold(l, |l, &x| l.i32(x))
            .f32(a.scale)
            .run(warp_blocks(d.rows), (128, 1))?;
    }
    if kv_rows > 0 {
        // Runs after the dq kernel on the same stream, which wrote `delta`.
        let l = gpu.launch(OP, "attention", format!("attention_bwd_dkdv_{}", E::SUFFIX))?;
        let l = l
            .ptr(qp)
            .ptr(kp)
            .ptr(vp)
            .ptr(mp)
            .ptr(lens)
            .ptr(dop)
            .ptr(lp)
            .ptr(dlp)
            .ptr(dkp)
            .ptr(dvp);
        d.ints
            .iter()
            .fold(l, |l, &x| l.i32(x))
            .f32(a.scale)
            .run(warp_blocks(kv_rows), (128, 1))?;
    }
    Ok(())
}
