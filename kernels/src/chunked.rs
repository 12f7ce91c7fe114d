//! The language-model head fused with log-probs, a chunk of rows at a time: logits exist only as
//! one `[chunk, vocab]` buffer, never as the full `[tokens, vocab]` (the f32 B×T×V tensor that
//! runs long-completion RL out of memory). Forward: GEMM → `logprobs_fwd` per chunk. Backward:
//! GEMM again (recompute) → `logprobs_bwd` in place → dhidden = dlogits W, dW += dlogitsᵀ hidden.

use crate::context::{need, Gpu};
use crate::error::{shape, Result};
use crate::gemm::{Gemm, GemmElem, GemmSpec};
use crate::logprobs::{logprobs_bwd_inplace, logprobs_fwd, LogprobSpec};
use cudarc::driver::CudaSlice;

/// Shapes: hidden [tokens, d], w (the head) [vocab, d], targets/logp/lse/dlogp [tokens].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadSpec {
    pub tokens: usize,
    pub d: usize,
    pub vocab: usize,
    /// Rows per chunk; the scratch buffer holds `chunk * vocab` elements.
    pub chunk: usize,
    pub ignore_index: Option<i64>,
    pub temperature: f32,
}

impl HeadSpec {
    fn check(&self, op: &'static str, hidden: usize, w: usize, scratch: usize) -> Result<()> {
        if self.chunk == 0 {
            return Err(shape(op, "chunk is 0"));
        }
        need(op, "hidden", hidden, self.tokens * self.d)?;
        need(op, "w", w, self.vocab * self.d)?;
        need(
            op,
            "scratch",
            scratch,
            self.chunk.min(self.tokens) * self.vocab,
        )
    }

    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.tokens)
            .step_by(self.chunk)
            .map(|r0| (r0, (r0 + self.chunk).min(self.tokens)))
    }

    fn rows(&self, rows: usize) -> LogprobSpec {
        LogprobSpec {
            rows,
            vocab: self.vocab,
            ignore_index: self.ignore_index,
            temperature: self.temperature,
        }
    }
}

/// logp[t] = log softmax((hidden[t] @ wᵀ) / T)[targets[t]], lse[t] saved for the backward.
#[allow(clippy::too_many_arguments)]
pub fn head_logprobs_fwd<E: GemmElem>(
    gpu: &Gpu,
    gemm: &Gemm,
    s: &HeadSpec,
    hidden: &CudaSlice<E>,
    w: &CudaSlice<E>,
    targets: &CudaSlice<i32>,
    scratch: &mut CudaSlice<E>,
    logp: &mut CudaSlice<f32>,
    lse: &mut CudaSlice<f32>,
) -> Result<()> {
    const OP: &str = "head_logprobs_fwd";
    s.check(OP, hidden.len(), w.len(), scratch.len())?;
    need(OP, "targets", targets.len(), s.tokens)?;
    need(OP, "logp", logp.len(), s.tokens)?;
    need(OP, "lse", lse.len(), s.tokens)?;
    for (r0, r1) in s.chunks() {
        let rows = r1 - r0;
        let mut logits = scratch.slice_mut(..rows * s.vocab);
        let g = GemmSpec::single(rows, s.vocab, s.d, false, true, 1.0, 0.0);
        gemm.matmul(&g, &hidden.slice(r0 * s.d..r1 * s.d), w, &mut logits)?;
        logprobs_fwd(
            gpu,
            &s.rows(rows),
            &logits,
            &targets.slice(r0..r1),
            &mut logp.slice_mut(r0..r1),
            &mut lse.slice_mut(r0..r1),
        )?;
    }
    Ok(())
}

/// dhidden (overwritten, [tokens, d]) and dw (**accumulated**, f32 [vocab, d]) from
/// dlogp ([tokens] f32) scaled by `scale`, recomputing each chunk's logits.
#[allow(clippy::too_many_arguments)]
pub fn head_logprobs_bwd<E: GemmElem>(
    gpu: &Gpu,
    gemm: &Gemm,
    s: &HeadSpec,
    hidden: &CudaSlice<E>,
    w: &CudaSlice<E>,
    targets: &CudaSlice<i32>,
    lse: &CudaSlice<f32>,
    dlogp: &CudaSlice<f32>,
    scale: f32,
    scratch: &mut CudaSlice<E>,
    dhidden: &mut CudaSlice<E>,
    dw: &mut CudaSlice<f32>,
) -> Result<()> {
    const OP: &str = "head_logprobs_bwd";
    s.check(OP, hidden.len(), w.len(), scratch.len())?;
    need(OP, "targets", targets.len(), s.tokens)?;
    need(OP, "lse", lse.len(), s.tokens)?;
    need(OP, "dlogp", dlogp.len(), s.tokens)?;
    need(OP, "dhidden", dhidden.len(), s.tokens * s.d)?;
    need(OP, "dw", dw.len(), s.vocab * s.d)?;
    for (r0, r1) in s.chunks() {
        let rows = r1 - r0;
        let h = hidden.slice(r0 * s.d..r1 * s.d);
        let mut logits = scratch.slice_mut(..rows * s.vocab);
        gemm.matmul(
            &GemmSpec::single(rows, s.vocab, s.d, false, true, 1.0, 0.0),
            &h,
            w,
            &mut logits,
        )?;
        let g = dlogp.slice(r0..r1);
        logprobs_bwd_inplace(
            gpu,
            &s.rows(rows),
            &mut logits,
            &targets.slice(r0..r1),
            &lse.slice(r0..r1),
            Some(&g),
            scale,
        )?;
        // dhidden[chunk] = dlogits @ w; dw += dlogitsᵀ @ hidden[chunk].
        let dl = scratch.slice(..rows * s.vocab);
        gemm.matmul(
            &GemmSpec::single(rows, s.d, s.vocab, false, false, 1.0, 0.0),
            &dl,
            w,
            &mut dhidden.slice_mut(r0 * s.d..r1 * s.d),
        )?;
        gemm.matmul(
            &GemmSpec::single(s.vocab, s.d, rows, true, false, 1.0, 1.0),
            &dl,
            &h,
            dw,
        )?;
    }
    Ok(())
}
