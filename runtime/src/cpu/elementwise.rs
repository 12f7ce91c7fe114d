//! Elementwise ops and reductions (rayon over fixed-size chunks).

use rayon::prelude::*;

use crate::{Result, Tensor};

pub(crate) const CHUNK: usize = 1 << 14;

pub(crate) fn binary(
    op: &'static str,
    out: &mut Tensor,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<()> {
    let a = a.f32_cow(op)?;
    let b = b.f32_cow(op)?;
    out.with_f32_mut(op, false, |o| {
        o.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| {
                for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                    *o = f(a, b);
                }
            });
        Ok(())
    })
}

pub(crate) fn scale(out: &mut Tensor, x: &Tensor, s: f32) -> Result<()> {
    let x = x.f32_cow("scale")?;
    out.with_f32_mut("scale", false, |o| {
        o.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = s * x;
                }
            });
        Ok(())
    })
}

pub(crate) fn scale_inplace(x: &mut Tensor, s: f32) -> Result<()> {
    x.with_f32_mut("scale_inplace", true, |o| {
        o.par_chunks_mut(CHUNK)
            .for_each(|o| o.iter_mut().for_each(|v| *v *= s));
        Ok(())
    })
}

pub(crate) fn axpy(y: &mut Tensor, alpha: f32, x: &Tensor) -> Result<()> {
    let x = x.f32_cow("axpy")?;
    y.with_f32_mut("axpy", true, |o| {
        o.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o += alpha * x;
                }
            });
        Ok(())
    })
}

/// Sum of `f(x)` over all elements: f32 partial sums over runs of 256 (8 accumulators, so the
/// loop vectorises), f64 across runs (keeps large reductions accurate). Chunk partials are
/// collected and added in order, so the result does not depend on rayon's work splitting.
pub(crate) fn reduce(op: &'static str, x: &Tensor, f: impl Fn(f32) -> f32 + Sync) -> Result<f64> {
    let x = x.f32_cow(op)?;
    let partials: Vec<f64> = x
        .par_chunks(CHUNK)
        .map(|c| {
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
