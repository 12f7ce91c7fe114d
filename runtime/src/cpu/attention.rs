//! Causal GQA attention on host memory (layouts in `crate::ops::attention`).

use rayon::prelude::*;

use crate::backend::AttnArgs;
use crate::{Error, Result, Tensor};

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
                let mut out = Vec::with_capacity(l.len());
                for (b, &v) in l.iter().enumerate() {
                    if v < a.t as i64 || v as usize > a.s {
                        return Err(Error::Invalid {
                            op,
                            msg: format!(
                                "kv_lens[{b}] = {v} must be in {}..={} (T new queries, S cache rows)",
                                a.t, a.s
                            ),
                        });
                    }
                    out.push(v as usize);
                }
                out
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

pub(crate) fn attention_fwd(
    out: &mut Tensor,
    lse: Option<&mut Tensor>,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    a: &AttnArgs,
) -> Result<()> {
    const OP: &str = "attention_fwd";
    let rule = KeyRule::new(a)?;
    let (bsz, t_len, s_len, h, hkv, d) = (a.batch, a.t, a.s, a.n_heads, a.n_kv_heads, a.head_dim);
    let grp = h / hkv;
    let qf = q.f32_cow(OP)?;
    let kf = k.f32_cow(OP)?;
    let vf = v.f32_cow(OP)?;
    let mut lse_buf = vec![f32::NEG_INFINITY; bsz * h * t_len];
    if h * d > 0 {
        out.with_f32_mut(OP, false, |o| {
            o.par_chunks_mut(h * d)
                .zip(lse_buf.par_chunks_mut(h))
                .enumerate()
                .for_each(|(bt, (orow, lrow))| {
                    let (b, t) = (bt / t_len, bt % t_len);
                    let n_keys = rule.causal_len(b, t);
                    let mut sc = vec![0.0f32; n_keys];
                    for hh in 0..h {
                        let kh = hh / grp;
                        let qv = &qf[(bt * h + hh) * d..(bt * h + hh + 1) * d];
                        let mut mx = f32::NEG_INFINITY;
                        for (s, scv) in sc.iter_mut().enumerate() {
                            if !rule.allowed(b, s) {
                                *scv = f32::NEG_INFINITY;
                                continue;
                            }
                            let kv = &kf[((b * s_len + s) * hkv + kh) * d..][..d];
                            let dot: f32 = qv.iter().zip(kv).map(|(x, y)| x * y).sum();
                            *scv = dot * a.scale;
                            mx = mx.max(*scv);
                        }
                        let ov = &mut orow[hh * d..(hh + 1) * d];
                        ov.fill(0.0);
                        if mx == f32::NEG_INFINITY {
                            lrow[hh] = f32::NEG_INFINITY;
                            continue;
                        }
                        let mut sum = 0.0f32;
                        for (s, &scv) in sc.iter().enumerate() {
                            if scv == f32::NEG_INFINITY {
                                continue;
                            }
                            let p = (scv - mx).exp();
                            sum += p;
                            let vv = &vf[((b * s_len + s) * hkv + kh) * d..][..d];
                            for (o, &x) in ov.iter_mut().zip(vv) {
                                *o += p * x;
                            }
                        }
                        ov.iter_mut().for_each(|x| *x /= sum);
                        lrow[hh] = mx + sum.ln();
                    }
                });
            Ok(())
        })?;
    }
    if let Some(l) = lse {
        // lse_buf is [B, T, H]; the saved layout is [B, H, T].
        let ls = l.as_mut_slice::<f32>()?;
        for b in 0..bsz {
            for t in 0..t_len {
                for hh in 0..h {
                    ls[(b * h + hh) * t_len + t] = lse_buf[(b * t_len + t) * h + hh];
                }
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_bwd(
    dq: &mut Tensor,
    dk: &mut Tensor,
    dv: &mut Tensor,
    dout: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    a: &AttnArgs,
) -> Result<()> {
    const OP: &str = "attention_bwd";
    let rule = KeyRule::new(a)?;
    let (bsz, t_len, s_len, h, hkv, d) = (a.batch, a.t, a.s, a.n_heads, a.n_kv_heads, a.head_dim);
    let grp = h / hkv;
    let qf = q.f32_cow(OP)?;
    let kf = k.f32_cow(OP)?;
    let vf = v.f32_cow(OP)?;
    let of = out.f32_cow(OP)?;
    let gf = dout.f32_cow(OP)?;
    let lf = lse.f32_cow(OP)?;
    // One task per (b, kv head): it owns dk/dv rows of that head and dq of its query heads.
    struct Part {
        dq: Vec<f32>, // [T, grp, D]
        dk: Vec<f32>, // [S, D]
        dv: Vec<f32>, // [S, D]
    }
    let parts: Vec<Part> = (0..bsz * hkv)
        .into_par_iter()
        .map(|bk| {
            let (b, kh) = (bk / hkv, bk % hkv);
            let mut p = Part {
                dq: vec![0.0; t_len * grp * d],
                dk: vec![0.0; s_len * d],
                dv: vec![0.0; s_len * d],
            };
            for g in 0..grp {
                let hh = kh * grp + g;
                for t in 0..t_len {
                    let l = lf[(b * h + hh) * t_len + t];
                    if l == f32::NEG_INFINITY {
                        continue;
                    }
                    let row = (b * t_len + t) * h + hh;
                    let qv = &qf[row * d..(row + 1) * d];
                    let go = &gf[row * d..(row + 1) * d];
                    let ov = &of[row * d..(row + 1) * d];
                    let di: f32 = go.iter().zip(ov).map(|(x, y)| x * y).sum();
                    let dqv = &mut p.dq[(t * grp + g) * d..(t * grp + g + 1) * d];
                    for s in 0..rule.causal_len(b, t) {
                        if !rule.allowed(b, s) {
                            continue;
                        }
                        let kv = &kf[((b * s_len + s) * hkv + kh) * d..][..d];
                        let vv = &vf[((b * s_len + s) * hkv + kh) * d..][..d];
                        let sc: f32 = qv.iter().zip(kv).map(|(x, y)| x * y).sum::<f32>() * a.scale;
                        let pr = (sc - l).exp();
                        let dp: f32 = go.iter().zip(vv).map(|(x, y)| x * y).sum();
                        let ds = pr * (dp - di) * a.scale;
                        for i in 0..d {
                            dqv[i] += ds * kv[i];
                            p.dk[s * d + i] += ds * qv[i];
                            p.dv[s * d + i] += pr * go[i];
                        }
                    }
                }
            }
            p
        })
        .collect();
    dq.with_f32_mut(OP, false, |dqs| {
        dk.with_f32_mut(OP, false, |dks| {
            dv.with_f32_mut(OP, false, |dvs| {
                for (bk, p) in parts.iter().enumerate() {
                    let (b, kh) = (bk / hkv, bk % hkv);
                    for s in 0..s_len {
                        let at = ((b * s_len + s) * hkv + kh) * d;
                        dks[at..at + d].copy_from_slice(&p.dk[s * d..(s + 1) * d]);
                        dvs[at..at + d].copy_from_slice(&p.dv[s * d..(s + 1) * d]);
                    }
                    for t in 0..t_len {
                        for g in 0..grp {
                            let at = ((b * t_len + t) * h + kh * grp + g) * d;
                            dqs[at..at + d]
                                .copy_from_slice(&p.dq[(t * grp + g) * d..(t * grp + g + 1) * d]);
                        }
                    }
                }
                Ok(())
            })
        })
    })
}
