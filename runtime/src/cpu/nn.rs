//! RMSNorm, RoPE, SwiGLU and embedding on host memory.

use rayon::prelude::*;

use super::vec;
use crate::{Error, Result, Tensor};

pub(crate) fn rmsnorm_fwd(
    out: &mut Tensor,
    rstd: &mut Tensor,
    x: &Tensor,
    w: &Tensor,
    eps: f32,
) -> Result<()> {
    const OP: &str = "rmsnorm_fwd";
    let c = w.numel();
    let xf = x.f32_cow(OP)?;
    let wf = w.f32_cow(OP)?;
    let r = rstd.as_mut_slice::<f32>()?;
    if c == 0 {
        r.fill((1.0 / eps.sqrt()).max(0.0));
        return Ok(());
    }
    out.with_f32_mut(OP, false, |o| {
        o.par_chunks_mut(c)
            .zip(r.par_iter_mut())
            .zip(xf.par_chunks(c))
            .for_each(|((o, r), x)| {
                let ss = vec::dot(x, x);
                let rs = 1.0 / (ss / c as f32 + eps).sqrt();
                *r = rs;
                for ((o, &x), &w) in o.iter_mut().zip(x).zip(wf.iter()) {
                    *o = w * (x * rs);
                }
            });
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn rmsnorm_bwd(
    dx: &mut Tensor,
    dw: &mut Tensor,
    dout: &Tensor,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    accumulate_dx: bool,
) -> Result<()> {
    const OP: &str = "rmsnorm_bwd";
    let c = w.numel();
    if c == 0 {
        return Ok(());
    }
    let xf = x.f32_cow(OP)?;
    let wf = w.f32_cow(OP)?;
    let gf = dout.f32_cow(OP)?;
    let rf = rstd.f32_cow(OP)?;
    // A few tasks per thread: each keeps one partial dW row, summed at the end.
    let n_rows = x.numel() / c;
    let rows_per_task = n_rows.div_ceil(4 * rayon::current_num_threads()).max(16);
    let dw_parts: Vec<Vec<f32>> = dx.with_f32_mut(OP, accumulate_dx, |dxs| {
        Ok(dxs
            .par_chunks_mut(c * rows_per_task)
            .enumerate()
            .map(|(blk, dxb)| {
                let mut dwp = vec![0.0f32; c];
                let mut gw = vec![0.0f32; c];
                for (j, dxr) in dxb.chunks_mut(c).enumerate() {
                    let n = blk * rows_per_task + j;
                    let xr = &xf[n * c..(n + 1) * c];
                    let gr = &gf[n * c..(n + 1) * c];
                    let rs = rf[n];
                    for (((gw, d), &g), (&x, &w)) in gw
                        .iter_mut()
                        .zip(dwp.iter_mut())
                        .zip(gr)
                        .zip(xr.iter().zip(wf.iter()))
                    {
                        *gw = g * w;
                        *d += g * x * rs;
                    }
                    // mean_c(g * w * xhat) drives the projection term of d xhat / d x.
                    let k = rs * rs * rs * vec::dot(&gw, xr) / c as f32;
                    if accumulate_dx {
                        for ((d, &gw), &x) in dxr.iter_mut().zip(&gw).zip(xr) {
                            *d += rs * gw - k * x;
                        }
                    } else {
                        for ((d, &gw), &x) in dxr.iter_mut().zip(&gw).zip(xr) {
                            *d = rs * gw - k * x;
                        }
                    }
                }
                dwp
            })
            .collect())
    })?;
    let dws = dw.as_mut_slice::<f32>()?;
    for p in &dw_parts {
        for (d, v) in dws.iter_mut().zip(p) {
            *d += v;
        }
    }
    Ok(())
}

pub(crate) fn rope(
    x: &mut Tensor,
    cos: &Tensor,
    sin: &Tensor,
    pos: &Tensor,
    inverse: bool,
) -> Result<()> {
    const OP: &str = "rope";
    let d = x.dim(x.rank() - 1);
    let h = x.dim(x.rank() - 2);
    let half = d / 2;
    let p_max = cos.dim(0);
    let pos = pos.i64_cow(OP)?;
    if let Some(&bad) = pos.iter().find(|&&p| p < 0 || p as usize >= p_max) {
        return Err(Error::Invalid {
            op: OP,
            msg: format!("position {bad} outside the table of {p_max} positions"),
        });
    }
    let cf = cos.as_slice::<f32>()?;
    let sf = sin.as_slice::<f32>()?;
    let sign = if inverse { -1.0f32 } else { 1.0 };
    if h * d == 0 {
        return Ok(());
    }
    x.with_f32_mut(OP, true, |xs| {
        xs.par_chunks_mut(h * d)
            .zip(pos.par_iter())
            .for_each(|(tok, &p)| {
                let c = &cf[p as usize * half..(p as usize + 1) * half];
                let s = &sf[p as usize * half..(p as usize + 1) * half];
                for head in tok.chunks_mut(d) {
                    let (x1, x2) = head.split_at_mut(half);
                    for i in 0..half {
                        let (a, b) = (x1[i], x2[i]);
                        let si = sign * s[i];
                        x1[i] = a * c[i] - b * si;
                        x2[i] = b * c[i] + a * si;
                    }
                }
            });
        Ok(())
    })
}

pub(crate) fn swiglu_fwd(out: &mut Tensor, gate: &Tensor, up: &Tensor) -> Result<()> {
    let g = gate.f32_cow("swiglu_fwd")?;
    let u = up.f32_cow("swiglu_fwd")?;
    const C: usize = super::elementwise::CHUNK;
    out.with_f32_mut("swiglu_fwd", false, |o| {
        o.par_chunks_mut(C)
            .zip(g.par_chunks(C).zip(u.par_chunks(C)))
            .for_each(|(o, (g, u))| vec::swiglu_fwd(o, g, u));
        Ok(())
    })
}

pub(crate) fn swiglu_bwd(
    dgate: &mut Tensor,
    dup: &mut Tensor,
    dout: &Tensor,
    gate: &Tensor,
    up: &Tensor,
) -> Result<()> {
    const OP: &str = "swiglu_bwd";
    let g = gate.f32_cow(OP)?;
    let u = up.f32_cow(OP)?;
    let dy = dout.f32_cow(OP)?;
    const C: usize = super::elementwise::CHUNK;
    dgate.with_f32_mut(OP, false, |dg| {
        dup.with_f32_mut(OP, false, |du| {
            dg.par_chunks_mut(C)
                .zip(du.par_chunks_mut(C))
                .enumerate()
                .for_each(|(ci, (dg, du))| {
                    let o = ci * C;
                    let n = dg.len();
                    let (g, u, dy) = (&g[o..o + n], &u[o..o + n], &dy[o..o + n]);
                    vec::swiglu_bwd(dg, du, dy, g, u);
                });
            Ok(())
        })
    })
}

fn check_ids(op: &'static str, ids: &[i64], v: usize) -> Result<()> {
    if let Some(&bad) = ids.iter().find(|&&i| i < 0 || i as usize >= v) {
        return Err(Error::Invalid {
            op,
            msg: format!("id {bad} outside vocabulary of {v}"),
        });
    }
    Ok(())
}

pub(crate) fn embedding_fwd(out: &mut Tensor, ids: &Tensor, table: &Tensor) -> Result<()> {
    const OP: &str = "embedding_fwd";
    let (v, c) = (table.dim(0), table.dim(1));
    let ids = ids.i64_cow(OP)?;
    check_ids(OP, &ids, v)?;
    if c == 0 {
        return Ok(());
    }
    let t = table.f32_cow(OP)?;
    out.with_f32_mut(OP, false, |o| {
        o.par_chunks_mut(c)
            .zip(ids.par_iter())
            .for_each(|(o, &id)| {
                o.copy_from_slice(&t[id as usize * c..(id as usize + 1) * c]);
            });
        Ok(())
    })
}

pub(crate) fn embedding_bwd(dtable: &mut Tensor, dout: &Tensor, ids: &Tensor) -> Result<()> {
    const OP: &str = "embedding_bwd";
    let (v, c) = (dtable.dim(0), dtable.dim(1));
    let ids = ids.i64_cow(OP)?;
    check_ids(OP, &ids, v)?;
    if c == 0 {
        return Ok(());
    }
    let g = dout.f32_cow(OP)?;
    let dt = dtable.as_mut_slice::<f32>()?;
    // Parallel over column blocks: each task owns a column range of every row, so repeated ids
    // never race and the sum order per element stays the token order (deterministic).
    let cb = c.div_ceil(rayon::current_num_threads().max(1)).max(64);
    let ptr = super::matmul::SendPtr(dt.as_mut_ptr());
    (0..c.div_ceil(cb)).into_par_iter().for_each(|blk| {
        let (c0, c1) = (blk * cb, ((blk + 1) * cb).min(c));
        for (n, &id) in ids.iter().enumerate() {
            let src = &g[n * c + c0..n * c + c1];
            // SAFETY: row `id` columns c0..c1 belong to this task alone; id < v was checked.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(ptr.get().add(id as usize * c + c0), c1 - c0)
            };
            for (d, s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    });
    Ok(())
}
