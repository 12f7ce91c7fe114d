//! AdamW step on f32 master weights.

use rayon::prelude::*;

use crate::backend::{AdamWParams, AdamWTensors};
use crate::Result;

pub(crate) fn adamw(t: AdamWTensors, p: &AdamWParams) -> Result<()> {
    const OP: &str = "adamw_step";
    let g = t.grad.f32_cow(OP)?;
    let bc1 = 1.0 - (p.beta1 as f64).powi(p.step.min(i32::MAX as u64) as i32);
    let bc2 = 1.0 - (p.beta2 as f64).powi(p.step.min(i32::MAX as u64) as i32);
    let step_size = (p.lr as f64 / bc1) as f32;
    let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
    let decay = 1.0 - p.lr * p.weight_decay;
    const C: usize = super::elementwise::CHUNK;
    {
        let ps = t.param.as_mut_slice::<f32>()?;
        let ms = t.m.as_mut_slice::<f32>()?;
        let vs = t.v.as_mut_slice::<f32>()?;
        ps.par_chunks_mut(C)
            .zip(ms.par_chunks_mut(C))
            .zip(vs.par_chunks_mut(C))
            .zip(g.par_chunks(C))
            .for_each(|(((ps, ms), vs), gs)| {
                for i in 0..ps.len() {
                    let gi = gs[i] * p.grad_scale;
                    ms[i] = p.beta1 * ms[i] + (1.0 - p.beta1) * gi;
                    vs[i] = p.beta2 * vs[i] + (1.0 - p.beta2) * gi * gi;
                    let denom = vs[i].sqrt() * inv_sqrt_bc2 + p.eps;
                    ps[i] = ps[i] * decay - step_size * ms[i] / denom;
                }
            });
    }
    if let Some(c) = t.copy {
        super::cast::cast(c, t.param)?;
    }
    Ok(())
}
