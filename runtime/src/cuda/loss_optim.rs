//! The CUDA backend's per-token log-probs (forward, backward; cross-entropy is their negation)
//! and the AdamW step, on the kernels' `logprobs` and `adamw` launchers.

use half::{bf16, f16};
use kernels::cudarc::driver::{DevicePtr, DevicePtrMut};
use kernels::logprobs::LogprobSpec;

use super::dev_err;
use super::util::{
    float_dispatch, gpu_of, ids_i32, ids_view, index_values, not_implemented, one_dtype, view,
    with_mut,
};
use crate::backend::{AdamWParams, AdamWTensors, LogprobRows};
use crate::{DType, Error, Result, Tensor};

/// Rows, vocabulary and the kernels' spec, after checking every target as the CPU twin does
/// (inside `0..V` unless it is the ignore index).
fn spec(op: &'static str, r: &LogprobRows) -> Result<LogprobSpec> {
    let vocab = r.logits.dim(r.logits.rank() - 1);
    let rows = r.targets.numel();
    let vals = index_values(op, r.targets)?;
    crate::ops::ranges::targets(op, &vals, vocab, r.ignore_index)?;
    // Targets travel as i32: an ignore index outside i32 can only matter if a target uses it.
    let ignore_index = match r.ignore_index {
        Some(i) if i32::try_from(i).is_err() => {
            if vals.contains(&i) {
                return not_implemented(op, &format!("ignore_index {i} (outside i32) is"));
            }
            None
        }
        other => other,
    };
    Ok(LogprobSpec {
        rows,
        vocab,
        ignore_index,
        temperature: r.temperature,
    })
}

pub(super) fn logprobs_fwd(logp: &mut Tensor, lse: &mut Tensor, r: &LogprobRows) -> Result<()> {
    const OP: &str = "token_logprobs_fwd";
    let (logits, targets) = (r.logits, r.targets);
    let sp = spec(OP, r)?;
    if sp.rows == 0 {
        return Ok(());
    }
    if sp.vocab == 0 {
        // The CPU twin's answer for an empty vocabulary.
        lse.fill(f64::NEG_INFINITY)?;
        return logp.fill(0.0);
    }
    let gpu = gpu_of(OP, logits)?;
    let conv = ids_i32(OP, targets)?;
    float_dispatch!(logits.dtype(), OP, E => unsafe {
        // SAFETY: E is the logits' dtype; logp and lse are F32 (checked by ops); targets i32.
        let lv = view::<E>(OP, logits)?;
        let tv = ids_view(OP, targets, &conv)?;
        with_mut::<f32, _>(OP, logp, |lp| {
            with_mut::<f32, _>(OP, lse, |ls| {
                kernels::logprobs::logprobs_fwd::<E>(gpu, &sp, &lv, &tv, lp, ls)
                    .map_err(dev_err(OP))
            })
        })
    })
}

pub(super) fn logprobs_bwd(
    dlogits: &mut Tensor,
    dlogp: Option<&Tensor>,
    scale: f32,
    lse: &Tensor,
    r: &LogprobRows,
) -> Result<()> {
    const OP: &str = "token_logprobs_bwd";
    let (logits, targets) = (r.logits, r.targets);
    let sp = spec(OP, r)?;
    if sp.rows == 0 || sp.vocab == 0 {
        return Ok(());
    }
    let gpu = gpu_of(OP, logits)?;
    let conv = ids_i32(OP, targets)?;
    float_dispatch!(one_dtype(OP, &[dlogits, logits])?, OP, E => unsafe {
        // SAFETY: dlogits and logits share E; lse and dlogp are F32 (checked by ops).
        let lv = view::<E>(OP, logits)?;
        let tv = ids_view(OP, targets, &conv)?;
        let sv = view::<f32>(OP, lse)?;
        let gv = match dlogp {
            Some(g) => Some(view::<f32>(OP, g)?),
            None => None,
        };
        let gp = gv.as_ref().map(|g| g as &dyn DevicePtr<f32>);
        with_mut::<E, _>(OP, dlogits, |d| {
            kernels::logprobs::logprobs_bwd::<E>(gpu, &sp, &lv, &tv, &sv, gp, scale, d)
                .map_err(dev_err(OP))
        })
    })
}

fn hyper(p: &AdamWParams) -> kernels::adamw::AdamwHyper {
    kernels::adamw::AdamwHyper {
        lr: p.lr,
        beta1: p.beta1,
        beta2: p.beta2,
        eps: p.eps,
        weight_decay: p.weight_decay,
        step: p.step,
        grad_scale: p.grad_scale,
    }
}

/// One AdamW step on f32 `param`, `m`, `v` from `grad` (any float); the updated weights are
/// also written to `copy` (fused when it has the gradient's dtype, else a cast afterwards, as
/// the CPU twin does).
pub(super) fn adamw(t: AdamWTensors, p: &AdamWParams) -> Result<()> {
    const OP: &str = "adamw_step";
    let n = t.param.numel();
    let gpu = gpu_of(OP, t.grad)?;
    let h = hyper(p);
    let gd = t.grad.dtype();
    let (fused, after) = match t.copy {
        Some(c) if c.dtype() == gd => (Some(c), None),
        other => (None, other),
    };
    float_dispatch!(gd, OP, E => unsafe {
        // SAFETY: grad (and a fused copy) hold E; param, m, v are F32 (checked by ops).
        let gv = view::<E>(OP, t.grad)?;
        with_mut::<f32, _>(OP, t.param, |pv| {
            with_mut::<f32, _>(OP, t.m, |mv| {
                with_mut::<f32, _>(OP, t.v, |vv| match fused {
                    Some(c) => with_mut::<E, _>(OP, c, |cv| {
                        kernels::adamw::adamw::<E>(
                            gpu,
                            &h,
                            pv,
                            &gv,
                            mv,
                            vv,
                            Some(cv as &mut dyn DevicePtrMut<E>),
                            n,
                        )
                        .map_err(dev_err(OP))
                    }),
                    None => kernels::adamw::adamw::<E>(gpu, &h, pv, &gv, mv, vv, None, n)
                        .map_err(dev_err(OP)),
                })
            })
        })
    })?;
    if let Some(c) = after {
        crate::backend::Backend::cast(&super::CudaBackend, c, t.param)?;
    }
    Ok(())
}
