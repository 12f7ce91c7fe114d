//! Row-wise softmax family: log-probs of targets, their backward, softmax.

use rayon::prelude::*;

use super::f32io::{F32In, F32Out};
use super::vec;
use crate::backend::LogprobRows;
use crate::{Result, Tensor};

/// The vocabulary size, the targets (each checked against it) and the logits of `r`.
fn rows_checked<'t>(op: &'static str, r: &LogprobRows<'t>) -> Result<(usize, Vec<i64>, F32In<'t>)> {
    let v = r.logits.dim(r.logits.rank() - 1);
    let t = r.targets.i64_cow(op)?.into_owned();
    crate::ops::ranges::targets(op, &t, v, r.ignore_index)?;
    Ok((v, t, F32In::of(r.logits, op)?))
}

/// `max` and `logsumexp` of `row * inv_t`.
fn row_lse(row: &[f32], inv_t: f32) -> f32 {
    // max(x) * inv_t == max(x * inv_t) because inv_t > 0.
    let mx = vec::max(row) * inv_t;
    if mx == f32::NEG_INFINITY {
        return mx;
    }
    mx + vec::sum_exp(row, inv_t, mx).ln()
}

pub(crate) fn logprobs_fwd(logp: &mut Tensor, lse: &mut Tensor, r: &LogprobRows) -> Result<()> {
    const OP: &str = "token_logprobs_fwd";
    let (v, tg, x) = rows_checked(OP, r)?;
    let ignore = r.ignore_index;
    let inv_t = 1.0 / r.temperature;
    let lp = logp.as_mut_slice::<f32>()?;
    let ls = lse.as_mut_slice::<f32>()?;
    if v == 0 {
        ls.fill(f32::NEG_INFINITY);
        lp.fill(0.0);
        return Ok(());
    }
    lp.par_iter_mut()
        .zip(ls.par_iter_mut())
        .zip(tg.par_iter())
        .enumerate()
        .for_each_init(Vec::new, |buf, (n, ((lp, ls), &t))| {
            let row = x.get(n * v..(n + 1) * v, buf);
            let l = row_lse(row, inv_t);
            *ls = l;
            *lp = if Some(t) == ignore {
                0.0
            } else {
                row[t as usize] * inv_t - l
            };
        });
    Ok(())
}

pub(crate) fn logprobs_bwd(
    dlogits: &mut Tensor,
    dlogp: Option<&Tensor>,
    scale: f32,
    lse: &Tensor,
    r: &LogprobRows,
) -> Result<()> {
    const OP: &str = "token_logprobs_bwd";
    let (v, tg, x) = rows_checked(OP, r)?;
    let ignore = r.ignore_index;
    let l = lse.f32_cow(OP)?;
    let g = match dlogp {
        Some(t) => Some(t.f32_cow(OP)?),
        None => None,
    };
    let inv_t = 1.0 / r.temperature;
    if v == 0 {
        return Ok(());
    }
    F32Out::of(dlogits, OP)?
        .par_chunks(v)
        .enumerate()
        .for_each_init(
            || [Vec::new(), Vec::new()],
            |[bd, bx], (n, drow)| {
                let t = tg[n];
                if Some(t) == ignore {
                    drow.with(bd, false, |d| d.fill(0.0));
                    return;
                }
                let c = scale * g.as_ref().map_or(1.0, |g| g[n]) * inv_t;
                let row = x.get(n * v..(n + 1) * v, bx);
                let ln = l[n];
                drow.with(bd, false, |drow| {
                    vec::exp_into(drow, row, inv_t, ln, -c);
                    drow[t as usize] += c;
                });
            },
        );
    Ok(())
}

pub(crate) fn softmax(out: &mut Tensor, x: &Tensor, temperature: f32) -> Result<()> {
    const OP: &str = "softmax";
    let v = x.dim(x.rank() - 1);
    if v == 0 {
        return Ok(());
    }
    let xf = F32In::of(x, OP)?;
    let inv_t = 1.0 / temperature;
    F32Out::of(out, OP)?
        .par_chunks(v)
        .enumerate()
        .for_each_init(
            || [Vec::new(), Vec::new()],
            |[bo, bx], (n, o)| {
                let row = xf.get(n * v..(n + 1) * v, bx);
                o.with(bo, false, |o| {
                    let l = row_lse(row, inv_t);
                    vec::exp_into(o, row, inv_t, l, 1.0);
                });
            },
        );
    Ok(())
}
