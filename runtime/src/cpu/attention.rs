//! Causal GQA attention on host memory (layouts in `crate::ops::attention`).

use std::borrow::Cow;

use rayon::prelude::*;

use super::matmul::SendPtr;
use super::vec::{self, gemm_strided, Mat};

use crate::backend::{AttnArgs, AttnGrads};
use crate::{Result, Tensor};

/// Which keys query `t` of sequence `b` may attend: `s <= last[b] - (T-1) + t`, mask allowing.
pub(crate) struct KeyRule {
    /// Valid keys per sequence (`L`); query `t` sits at `L - T + t`.
    pub lens: Vec<usize>,
    pub mask: Option<Vec<i64>>,
    pub s: usize,
    pub t: usize,
}

impl KeyRule {
    pub(crate) fn new(a: &AttnArgs) -> Result<KeyRule> {
        let op = a.op;
        let lens = match a.kv_lens {
            Some(l) => {
                let l = l.i64_cow(op)?;
                crate::ops::ranges::kv_lens(op, &l, a.t, a.s)?;
                l.iter().map(|&v| v as usize).collect()
            }
            None => vec![a.q_offset + a.t; a.batch],
        };
        let mask = match a.key_mask {
            Some(m) => Some(m.i64_cow(op)?.into_owned()),
            None => None,
        };
        Ok(KeyRule {
            lens,
            mask,
            s: a.s,
            t: a.t,
        })
    }

    /// Number of keys (a prefix) query `t` of sequence `b` can see causally.
    pub(crate) fn causal_len(&self, b: usize, t: usize) -> usize {
        self.lens[b] - self.t + t + 1
    }

    pub(crate) fn allowed(&self, b: usize, s: usize) -> bool {
        match &self.mask {
            Some(m) => m[b * self.s + s] != 0,
            None => true,
        }
    }
}

/// Queries per block: scores for a block are `[BQ, keys]`, computed by one GEMM; causal blocks
/// only touch the key prefix their last query can see.
const BQ: usize = 32;

/// Strides of the `[B, T, H, D]` / `[B, S, Hkv, D]` layouts, as GEMM operands.
#[derive(Clone, Copy)]
struct Geo {
    t: usize,
    s: usize,
    h: usize,
    hkv: usize,
    d: usize,
}

impl Geo {
    fn of(a: &AttnArgs) -> Self {
        Geo {
            t: a.t,
            s: a.s,
            h: a.n_heads,
            hkv: a.n_kv_heads,
            d: a.head_dim,
        }
    }
    fn q_at(&self, b: usize, t: usize, h: usize) -> usize {
        ((b * self.t + t) * self.h + h) * self.d
    }
    fn k_at(&self, b: usize, s: usize, kh: usize) -> usize {
        ((b * self.s + s) * self.hkv + kh) * self.d
    }
    fn q_rs(&self) -> usize {
        self.h * self.d
    }
    fn k_rs(&self) -> usize {
        self.hkv * self.d
    }
}

/// Turns raw scores `sc` (`[tb, n_keys]`, already scaled) into probabilities in place using
/// the causal/mask rule; returns each row's log-sum-exp (`-inf` for rows with no key).
fn softmax_rows(
    sc: &mut [f32],
    n_keys: usize,
    rule: &KeyRule,
    b: usize,
    t0: usize,
    lse: &mut [f32],
) {
    for (j, row) in sc.chunks_mut(n_keys).enumerate() {
        let visible = rule.causal_len(b, t0 + j).min(n_keys);
        row[visible..].fill(f32::NEG_INFINITY);
        if rule.mask.is_some() {
            for (s, x) in row[..visible].iter_mut().enumerate() {
                if !rule.allowed(b, s) {
                    *x = f32::NEG_INFINITY;
                }
            }
        }
        let mx = vec::max(row);
        if mx == f32::NEG_INFINITY {
            row.fill(0.0);
            lse[j] = f32::NEG_INFINITY;
            continue;
        }
        let sum = vec::exp_inplace(row, mx);
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|x| *x *= inv);
        lse[j] = mx + sum.ln();
    }
}

/// `q`, `k`, `v` as f32.
type Qkv<'a> = [Cow<'a, [f32]>; 3];

/// What both passes read: the key rule, the layout, query heads per KV head, and q, k, v as f32.
fn inputs<'a>(a: &AttnArgs<'a>) -> Result<(KeyRule, Geo, usize, Qkv<'a>)> {
    let g = Geo::of(a);
    let qkv = [a.q.f32_cow(a.op)?, a.k.f32_cow(a.op)?, a.v.f32_cow(a.op)?];
    Ok((KeyRule::new(a)?, g, g.h / g.hkv, qkv))
}

pub(crate) fn attention_fwd(
    out: &mut Tensor,
    lse: Option<&mut Tensor>,
    a: &AttnArgs,
) -> Result<()> {
    let op = a.op;
    let (rule, g, grp, [qf, kf, vf]) = inputs(a)?;
    // lse in its saved layout [B, H, T]: task (b, h) owns one contiguous row of T.
    let mut lse_buf = vec![f32::NEG_INFINITY; a.batch * g.h * g.t];
    out.with_f32_mut(op, false, |o| {
        let optr = SendPtr(o.as_mut_ptr());
        lse_buf
            .par_chunks_mut(g.t.max(1))
            .enumerate()
            .for_each(|(bh, lrow)| {
                let (b, h) = (bh / g.h, bh % g.h);
                let kh = h / grp;
                let mut sc = Vec::new();
                for t0 in (0..g.t).step_by(BQ) {
                    let tb = BQ.min(g.t - t0);
                    let n_keys = rule.causal_len(b, t0 + tb - 1);
                    sc.resize(tb * n_keys, 0.0);
                    let qm = Mat::rows(&qf[g.q_at(b, t0, h)..], g.q_rs());
                    let kt = Mat::cols(&kf[g.k_at(b, 0, kh)..], g.k_rs());
                    let vm = Mat::rows(&vf[g.k_at(b, 0, kh)..], g.k_rs());
                    // SAFETY: q rows t0..t0+tb and k/v rows 0..n_keys (<= S) of this (b, head) are in
                    // bounds; `out` rows of head h of sequence b are written by this task only.
                    unsafe {
                        gemm_strided(
                            tb,
                            n_keys,
                            g.d,
                            sc.as_mut_ptr(),
                            n_keys,
                            qm,
                            kt,
                            a.scale,
                            0.0,
                        );
                        softmax_rows(&mut sc, n_keys, &rule, b, t0, &mut lrow[t0..t0 + tb]);
                        let pm = Mat::rows(&sc, n_keys);
                        let dst = optr.get().add(g.q_at(b, t0, h));
                        gemm_strided(tb, g.d, n_keys, dst, g.q_rs(), pm, vm, 1.0, 0.0);
                    }
                }
            });
        Ok(())
    })?;
    if let Some(l) = lse {
        l.as_mut_slice::<f32>()?.copy_from_slice(&lse_buf);
    }
    Ok(())
}

pub(crate) fn attention_bwd(t: AttnGrads, a: &AttnArgs) -> Result<()> {
    let op = a.op;
    let (rule, g, grp, [qf, kf, vf]) = inputs(a)?;
    let of = t.out.f32_cow(op)?;
    let gf = t.dout.f32_cow(op)?;
    let lf = t.lse.f32_cow(op)?;
    t.dq.with_f32_mut(op, false, |dqs| {
        t.dk.with_f32_mut(op, false, |dks| {
            t.dv.with_f32_mut(op, false, |dvs| {
                let ptrs = (
                    SendPtr(dqs.as_mut_ptr()),
                    SendPtr(dks.as_mut_ptr()),
                    SendPtr(dvs.as_mut_ptr()),
                );
                (0..a.batch * g.hkv).into_par_iter().for_each(|bk| {
                    let (dqp, dkp, dvp) = ptrs;
                    let (b, kh) = (bk / g.hkv, bk % g.hkv);
                    let n_all = rule.lens[b];
                    // dK, dV of this (b, kv head) accumulate over its query heads and blocks.
                    let mut dk_l = vec![0.0f32; n_all * g.d];
                    let mut dv_l = vec![0.0f32; n_all * g.d];
                    let (mut p, mut dp, mut lrow) = (Vec::new(), Vec::new(), vec![0.0f32; BQ]);
                    let kt = Mat::cols(&kf[g.k_at(b, 0, kh)..], g.k_rs());
                    let km = Mat::rows(&kf[g.k_at(b, 0, kh)..], g.k_rs());
                    let vt = Mat::cols(&vf[g.k_at(b, 0, kh)..], g.k_rs());
                    for h in kh * grp..(kh + 1) * grp {
                        for t0 in (0..g.t).step_by(BQ) {
                            let tb = BQ.min(g.t - t0);
                            let n_keys = rule.causal_len(b, t0 + tb - 1);
                            p.resize(tb * n_keys, 0.0);
                            dp.resize(tb * n_keys, 0.0);
                            let qm = Mat::rows(&qf[g.q_at(b, t0, h)..], g.q_rs());
                            let gm = Mat::rows(&gf[g.q_at(b, t0, h)..], g.q_rs());
                            // SAFETY: all operands address rows inside this (b, head) slab of their
                            // tensors; dq rows of head h and the local dk/dv are owned by this task.
                            unsafe {
                                gemm_strided(
                                    tb,
                                    n_keys,
                                    g.d,
                                    p.as_mut_ptr(),
                                    n_keys,
                                    qm,
                                    kt,
                                    a.scale,
                                    0.0,
                                );
                                // Recompute probabilities from the saved lse (masked entries -> 0).
                                let lse_row = &lf[(b * g.h + h) * g.t + t0..][..tb];
                                for (j, row) in p.chunks_mut(n_keys).enumerate() {
                                    let visible = rule.causal_len(b, t0 + j).min(n_keys);
                                    let l = lse_row[j];
                                    if l == f32::NEG_INFINITY {
                                        row.fill(0.0);
                                        continue;
                                    }
                                    vec::exp_inplace(&mut row[..visible], l);
                                    row[visible..].fill(0.0);
                                    if rule.mask.is_some() {
                                        for (s, x) in row[..visible].iter_mut().enumerate() {
                                            if !rule.allowed(b, s) {
                                                *x = 0.0;
                                            }
                                        }
                                    }
                                }
                                // dV += P^T dO
                                let pt = Mat::cols(&p, n_keys);
                                gemm_strided(
                                    n_keys,
                                    g.d,
                                    tb,
                                    dv_l.as_mut_ptr(),
                                    g.d,
                                    pt,
                                    gm,
                                    1.0,
                                    1.0,
                                );
                                // dP = dO V^T
                                gemm_strided(
                                    tb,
                                    n_keys,
                                    g.d,
                                    dp.as_mut_ptr(),
                                    n_keys,
                                    gm,
                                    vt,
                                    1.0,
                                    0.0,
                                );
                                // dS = P * (dP - rowsum(dO * O)) * scale, into dp
                                for (j, di) in lrow[..tb].iter_mut().enumerate() {
                                    let at = g.q_at(b, t0 + j, h);
                                    *di = vec::dot(&gf[at..at + g.d], &of[at..at + g.d]);
                                }
                                for (j, (dr, pr)) in
                                    dp.chunks_mut(n_keys).zip(p.chunks(n_keys)).enumerate()
                                {
                                    let di = lrow[j];
                                    for (x, &pv) in dr.iter_mut().zip(pr) {
                                        *x = pv * (*x - di) * a.scale;
                                    }
                                }
                                // dQ = dS K (rows of head h: this task's alone)
                                let ds = Mat::rows(&dp, n_keys);
                                let dst = dqp.get().add(g.q_at(b, t0, h));
                                gemm_strided(tb, g.d, n_keys, dst, g.q_rs(), ds, km, 1.0, 0.0);
                                // dK += dS^T Q
                                let dst_t = Mat::cols(&dp, n_keys);
                                gemm_strided(
                                    n_keys,
                                    g.d,
                                    tb,
                                    dk_l.as_mut_ptr(),
                                    g.d,
                                    dst_t,
                                    qm,
                                    1.0,
                                    1.0,
                                );
                            }
                        }
                    }
                    for s in 0..g.s {
                        let at = g.k_at(b, s, kh);
                        // SAFETY: rows of kv head kh of sequence b belong to this task only.
                        let (dkr, dvr) = unsafe {
                            (
                                std::slice::from_raw_parts_mut(dkp.get().add(at), g.d),
                                std::slice::from_raw_parts_mut(dvp.get().add(at), g.d),
                            )
                        };
                        if s < n_all {
                            dkr.copy_from_slice(&dk_l[s * g.d..(s + 1) * g.d]);
                            dvr.copy_from_slice(&dv_l[s * g.d..(s + 1) * g.d]);
                        } else {
                            dkr.fill(0.0);
                            dvr.fill(0.0);
                        }
                    }
                });
                Ok(())
            })
        })
    })
}
