//! Elementwise ops and reductions (rayon over fixed-size chunks).

use rayon::prelude::*;

use super::f32io::{F32In, F32Out};
use crate::{Result, Tensor};

pub(crate) const CHUNK: usize = 1 << 14;

pub(crate) fn binary(
    op: &'static str,
    out: &mut Tensor,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<()> {
    let (a, b) = (F32In::of(a, op)?, F32In::of(b, op)?);
    F32Out::of(out, op)?
        .par_chunks(CHUNK)
        .enumerate()
        .for_each_init(
            || [Vec::new(), Vec::new(), Vec::new()],
            |[bo, ba, bb], (ci, o)| {
                let r = ci * CHUNK..ci * CHUNK + o.len();
                let (a, b) = (a.get(r.clone(), ba), b.get(r, bb));
                o.with(bo, false, |o| {
                    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                        *o = f(a, b);
                    }
                });
            },
        );
    Ok(())
}

/// `out[i] = f(out[i], x[i])`; `out`'s old values are read only when `accumulate`.
fn update(
    op: &'static str,
    out: &mut Tensor,
    x: &Tensor,
    accumulate: bool,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<()> {
    let x = F32In::of(x, op)?;
    F32Out::of(out, op)?
        .par_chunks(CHUNK)
        .enumerate()
        .for_each_init(
            || [Vec::new(), Vec::new()],
            |[bo, bx], (ci, o)| {
                let x = x.get(ci * CHUNK..ci * CHUNK + o.len(), bx);
                o.with(bo, accumulate, |o| {
                    for (o, &x) in o.iter_mut().zip(x) {
                        *o = f(*o, x);
                    }
                });
            },
        );
    Ok(())
}

pub(crate) fn scale(out: &mut Tensor, x: &Tensor, s: f32) -> Result<()> {
    update("scale", out, x, false, |_, x| s * x)
}

pub(crate) fn scale_inplace(x: &mut Tensor, s: f32) -> Result<()> {
    F32Out::of(x, "scale_inplace")?
        .par_chunks(CHUNK)
        .for_each_init(Vec::new, |buf, o| {
            o.with(buf, true, |o| o.iter_mut().for_each(|v| *v *= s))
        });
    Ok(())
}

pub(crate) fn axpy(y: &mut Tensor, alpha: f32, x: &Tensor) -> Result<()> {
    update("axpy", y, x, true, |y, x| y + alpha * x)
}

/// Sum of `f(x)` over all elements: f32 partial sums over runs of 256 (8 accumulators, so the
/// loop vectorises), f64 across runs (keeps large reductions accurate). Chunk partials are
/// collected and added in order, so the result does not depend on rayon's work splitting.
pub(crate) fn reduce(op: &'static str, x: &Tensor, f: impl Fn(f32) -> f32 + Sync) -> Result<f64> {
    let x = F32In::of(x, op)?;
    let n_chunks = x.len().div_ceil(CHUNK);
    let partials: Vec<f64> = (0..n_chunks)
        .into_par_iter()
        .map_init(Vec::new, |buf, ci| {
            let c = x.get(ci * CHUNK..((ci + 1) * CHUNK).min(x.len()), buf);
            c.chunks(256)
                .map(|r| {
                    let mut acc = [0.0f32; 8];
                    let it = r.chunks_exact(8);
                    let rest: f32 = it.remainder().iter().map(|&v| f(v)).sum();
                    for v in it {
                        for i in 0..8 {
                            acc[i] += f(v[i]);
                        }
                    }
                    (acc.iter().sum::<f32>() + rest) as f64
                })
                .sum::<f64>()
        })
        .collect();
    Ok(partials.iter().sum())
}
