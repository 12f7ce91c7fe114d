//! RMSNorm, RoPE, SwiGLU and embedding on host memory.

use rayon::prelude::*;

use super::f32io::{F32In, F32Out};
use super::vec;
use crate::backend::RmsNormGrads;
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
    let xf = F32In::of(x, OP)?;
    let wf = w.f32_cow(OP)?;
    let r = rstd.as_mut_slice::<f32>()?;
    if c == 0 {
        r.fill((1.0 / eps.sqrt()).max(0.0));
        return Ok(());
    }
    F32Out::of(out, OP)?
        .par_chunks(c)
        .zip(r.par_iter_mut())
        .enumerate()
        .for_each_init(
            || [Vec::new(), Vec::new()],
            |[bo, bx], (n, (o, r))| {
                let x = xf.get(n * c..(n + 1) * c, bx);
                o.with(bo, false, |o| {
                    let ss = vec::dot(x, x);
                    let rs = 1.0 / (ss / c as f32 + eps).sqrt();
                    *r = rs;
                    for ((o, &x), &w) in o.iter_mut().zip(x).zip(wf.iter()) {
                        *o = w * (x * rs);
                    }
                });
            },
        );
    Ok(())
}

pub(crate) fn rmsnorm_bwd(args: RmsNormGrads) -> Result<()> {
    const OP: &str = "rmsnorm_bwd";
    let (x, w, accumulate_dx) = (args.x, args.w, args.accumulate_dx);
    let c = w.numel();
    if c == 0 {
        return Ok(());
    }
    let xf = F32In::of(x, OP)?;
    let wf = w.f32_cow(OP)?;
    let gf = F32In::of(args.dout, OP)?;
    let rf = args.rstd.f32_cow(OP)?;
    // A few tasks per thread: each keeps one partial dW row, summed at the end.
    let n_rows = x.numel() / c;
    let rows_per_task = n_rows.div_ceil(4 * rayon::current_num_threads()).max(16);
    let blk_len = c * rows_per_task;
    let mut dw_parts = vec![vec![0.0f32; c]; x.numel().div_ceil(blk_len)];
    F32Out::of(args.dx, OP)?
        .par_chunks(blk_len)
        .zip(dw_parts.par_iter_mut())
        .enumerate()
        .for_each_init(
            || [Vec::new(), Vec::new(), Vec::new(), vec![0.0f32; c]],
            |[bdx, bx, bg, gw], (blk, (dxb, dwp))| {
                let span = blk * blk_len..blk * blk_len + dxb.len();
                let xb = xf.get(span.clone(), bx);
                let gb = gf.get(span, bg);
                dxb.with(bdx, accumulate_dx, |dxb| {
                    for (j, dxr) in dxb.chunks_mut(c).enumerate() {
                        let n = blk * rows_per_task + j;
                        let xr = &xb[j * c..(j + 1) * c];
                        let gr = &gb[j * c..(j + 1) * c];
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
                        let k = rs * rs * rs * vec::dot(gw, xr) / c as f32;
                        if accumulate_dx {
                            for ((d, &gw), &x) in dxr.iter_mut().zip(gw.iter()).zip(xr) {
                                *d += rs * gw - k * x;
                            }
                        } else {
                            for ((d, &gw), &x) in dxr.iter_mut().zip(gw.iter()).zip(xr) {
                                *d = rs * gw - k * x;
                            }
                        }
                    }
                });
            },
        );
    let dws = args.dw.as_mut_slice::<f32>()?;
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
    crate::ops::ranges::positions(OP, &pos, p_max)?;
    let cf = cos.as_slice::<f32>()?;
    let sf = sin.as_slice::<f32>()?;
    let sign = if inverse { -1.0f32 } else { 1.0 };
    if h * d == 0 {
        return Ok(());
    }
    F32Out::of(x, OP)?
        .par_chunks(h * d)
        .zip(pos.par_iter())
        .for_each_init(Vec::new, |buf, (tok, &p)| {
            let c = &cf[p as usize * half..(p as usize + 1) * half];
            let s = &sf[p as usize * half..(p as usize + 1) * half];
            tok.with(buf, true, |tok| {
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
        });
    Ok(())
}

pub(crate) fn swiglu_fwd(out: &mut Tensor, gate: &Tensor, up: &Tensor) -> Result<()> {
    const OP: &str = "swiglu_fwd";
    let g = F32In::of(gate, OP)?;
    let u = F32In::of(up, OP)?;
    const C: usize = super::elementwise::CHUNK;
    F32Out::of(out, OP)?
        .par_chunks(C)
        .enumerate()
        .for_each_init(
            || [Vec::new(), Vec::new(), Vec::new()],
            |[bo, bg, bu], (ci, o)| {
                let r = ci * C..ci * C + o.len();
                let (g, u) = (g.get(r.clone(), bg), u.get(r, bu));
                o.with(bo, false, |o| vec::swiglu_fwd(o, g, u));
            },
        );
    Ok(())
}

pub(crate) fn swiglu_bwd(
    dgate: &mut Tensor,
    dup: &mut Tensor,
    dout: &Tensor,
    gate: &Tensor,
    up: &Tensor,
) -> Result<()> {
    const OP: &str = "swiglu_bwd";
    let g = F32In::of(gate, OP)?;
    let u = F32In::of(up, OP)?;
    let dy = F32In::of(dout, OP)?;
    const C: usize = super::elementwise::CHUNK;
    F32Out::of(dgate, OP)?
        .par_chunks(C)
        .zip(F32Out::of(dup, OP)?.par_chunks(C))
        .enumerate()
        .for_each_init(
            || std::array::from_fn::<Vec<f32>, 5, _>(|_| Vec::new()),
            |[bdg, bdu, bg, bu, bdy], (ci, (dg, du))| {
                let r = ci * C..ci * C + dg.len();
                let g = g.get(r.clone(), bg);
                let u = u.get(r.clone(), bu);
                let dy = dy.get(r, bdy);
                dg.with(bdg, false, |dg| {
                    du.with(bdu, false, |du| vec::swiglu_bwd(dg, du, dy, g, u))
                });
            },
        );
    Ok(())
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
    let t = F32In::of(table, OP)?;
    F32Out::of(out, OP)?
        .par_chunks(c)
        .zip(ids.par_iter())
        .for_each_init(Vec::new, |buf, (o, &id)| {
            let row = id as usize * c..(id as usize + 1) * c;
            o.with(buf, false, |o| t.read_into(row, o));
        });
    Ok(())
}

pub(crate) fn embedding_bwd(dtable: &mut Tensor, dout: &Tensor, ids: &Tensor) -> Result<()> {
    const OP: &str = "embedding_bwd";
    let (v, c) = (dtable.dim(0), dtable.dim(1));
    let ids = ids.i64_cow(OP)?;
    check_ids(OP, &ids, v)?;
    if c == 0 {
        return Ok(());
    }
    let g = F32In::of(dout, OP)?;
    let dt = dtable.as_mut_slice::<f32>()?;
    // Parallel over column blocks: each task owns a column range of every row, so repeated ids
    // never race and the sum order per element stays the token order (deterministic).
    let cb = c.div_ceil(rayon::current_num_threads().max(1)).max(64);
    let ptr = super::matmul::SendPtr(dt.as_mut_ptr());
    (0..c.div_ceil(cb)).into_par_iter().for_each(|blk| {
        let (c0, c1) = (blk * cb, ((blk + 1) * cb).min(c));
        // Each task converts only its own columns of `dout`, so half inputs convert once.
        let mut buf = Vec::new();
        for (n, &id) in ids.iter().enumerate() {
            let src = g.get(n * c + c0..n * c + c1, &mut buf);
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
