//! Vocabulary-parallel embedding and log-probs: rank `r` holds vocabulary rows
//! `r*V/tp .. (r+1)*V/tp` of the embedding and of the LM head.
//!
//! Log-probs never gather the `[N, V]` logits. Each rank takes its local log-sum-exp `l_r` and,
//! where the target is in its range, the target logit; then per token one max (all-gathered:
//! the [`Communicator`] sums only) and two sums (one fused all-reduce) give
//! `lse = M + ln sum_r exp(l_r - M)` and `logp = logit_t / T - lse`.

use std::ops::Range;

use runtime::comm::Communicator;
use runtime::{ops, DType, Device, Tensor};

use crate::error::{ModelError, Result};
use crate::layers::embedding;
use crate::layers::lm_head::IGNORE;

/// Ids as local rows: in-range ids shifted to `0..`, others sent to row 0 (`false` in the mask).
fn local_ids(ids: &Tensor, range: &Range<usize>, vocab: usize) -> Result<(Tensor, Vec<bool>)> {
    let v = ids.to_vec::<i64>()?;
    if let Some(&bad) = v.iter().find(|&&x| x < 0 || x as usize >= vocab) {
        return Err(ModelError::Invalid(format!(
            "token id {bad} is outside the vocabulary (size {vocab})"
        )));
    }
    let mine: Vec<bool> = v.iter().map(|&x| range.contains(&(x as usize))).collect();
    let local: Vec<i64> = v
        .iter()
        .zip(&mine)
        .map(|(&x, &m)| if m { x - range.start as i64 } else { 0 })
        .collect();
    Ok((
        Tensor::from_vec(local, ids.shape())?.to_device(ids.device())?,
        mine,
    ))
}

/// Zeroes the rows (`[.., C]` viewed as `[N, C]`) whose mask entry is false.
fn zero_rows(t: &mut Tensor, keep: &[bool]) -> Result<()> {
    let c = t.dim(t.rank() - 1);
    let s = t.as_mut_slice::<f32>()?;
    for (row, _) in s.chunks_exact_mut(c).zip(keep).filter(|(_, &k)| !k) {
        row.fill(0.0);
    }
    Ok(())
}

/// `out = table[ids]` over the whole vocabulary: each rank looks up its range, zeros
/// elsewhere, then the ranks sum.
pub fn embed_forward(
    out: &mut Tensor,
    ids: &Tensor,
    table: &Tensor,
    range: &Range<usize>,
    vocab: usize,
    comm: &mut dyn Communicator,
) -> Result<()> {
    let (local, mine) = local_ids(ids, range, vocab)?;
    embedding::forward(out, &local, table)?;
    zero_rows(out, &mine)?;
    if comm.world_size() > 1 {
        comm.all_reduce_sum(out)?;
    }
    Ok(())
}

/// `dtable[ids - start] += dout` for the ids in this rank's range; `scratch` is a buffer
/// shaped like `dout` (overwritten).
pub fn embed_backward(
    dtable: &mut Tensor,
    dout: &Tensor,
    ids: &Tensor,
    range: &Range<usize>,
    vocab: usize,
    scratch: &mut Tensor,
) -> Result<()> {
    let (local, mine) = local_ids(ids, range, vocab)?;
    ops::copy_rows(scratch, 0, dout)?;
    zero_rows(scratch, &mine)?;
    embedding::backward(dtable, scratch, &local)
}

/// Targets as this rank sees them: local index when in range, else `IGNORE`; `mine` marks
/// the in-range rows, `ignored` the rows ignored everywhere.
struct Targets {
    local: Tensor,
    mine: Vec<bool>,
    ignored: Vec<bool>,
}

fn split_targets(targets: &Tensor, range: &Range<usize>, vocab: usize) -> Result<Targets> {
    let v = targets.to_vec::<i64>()?;
    if let Some(&bad) = v
        .iter()
        .find(|&&x| x != IGNORE && (x < 0 || x as usize >= vocab))
    {
        return Err(ModelError::Invalid(format!(
            "target {bad} outside vocabulary of {vocab} (ignore_index {IGNORE})"
        )));
    }
    let mine: Vec<bool> = v
        .iter()
        .map(|&x| x != IGNORE && range.contains(&(x as usize)))
        .collect();
    let local: Vec<i64> = v
        .iter()
        .zip(&mine)
        .map(|(&x, &m)| if m { x - range.start as i64 } else { IGNORE })
        .collect();
    Ok(Targets {
        local: Tensor::from_vec(local, targets.shape())?,
        mine,
        ignored: v.iter().map(|&x| x == IGNORE).collect(),
    })
}

/// Per-token `logp[n] = log softmax(logits[n] / T)[t_n]` over the whole vocabulary from this
/// rank's `logits [.., V/tp]` (global `targets [..]`, `IGNORE` rows get 0); `lse` (F32, one
/// per row) receives the global log-sum-exp the backward needs. Same values on every rank.
#[allow(clippy::too_many_arguments)]
pub fn token_logprobs_fwd(
    logp: &mut Tensor,
    lse: &mut Tensor,
    logits: &Tensor,
    targets: &Tensor,
    temperature: f32,
    range: &Range<usize>,
    vocab: usize,
    comm: &mut dyn Communicator,
) -> Result<()> {
    let tg = split_targets(targets, range, vocab)?;
    let n = tg.mine.len();
    let cpu = Device::Cpu;
    let mut lp_loc = Tensor::zeros(targets.shape(), DType::F32, &cpu)?;
    let mut lse_loc = Tensor::zeros(targets.shape(), DType::F32, &cpu)?;
    ops::token_logprobs_fwd(
        &mut lp_loc,
        &mut lse_loc,
        logits,
        &tg.local,
        temperature,
        Some(IGNORE),
    )?;
    let (lp_loc, lse_loc) = (lp_loc.to_f32_vec()?, lse_loc.to_f32_vec()?);
    // The max: every rank's local lse, then max on the host.
    let tp = comm.world_size();
    let mut all = Tensor::zeros(&[tp * n], DType::F32, &cpu)?;
    comm.all_gather(&Tensor::from_vec(lse_loc.clone(), &[n])?, &mut all)?;
    let all = all.to_f32_vec()?;
    let max: Vec<f32> = (0..n)
        .map(|i| {
            (0..tp)
                .map(|r| all[r * n + i])
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect();
    // The two sums, fused: sum-exp against the max, and the target logit (from its owner).
    let mut sums: Vec<f32> = lse_loc
        .iter()
        .zip(&max)
        .map(|(l, m)| (l - m).exp())
        .collect();
    sums.extend((0..n).map(|i| {
        if tg.mine[i] {
            lp_loc[i] + lse_loc[i]
        } else {
            0.0
        }
    }));
    let mut sums = Tensor::from_vec(sums, &[2 * n])?;
    if tp > 1 {
        comm.all_reduce_sum(&mut sums)?;
    }
    let sums = sums.to_f32_vec()?;
    let lse_g: Vec<f32> = (0..n).map(|i| max[i] + sums[i].ln()).collect();
    let lp: Vec<f32> = (0..n)
        .map(|i| {
            if tg.ignored[i] {
                0.0
            } else {
                sums[n + i] - lse_g[i]
            }
        })
        .collect();
    write_rows(logp, &lp)?;
    write_rows(lse, &lse_g)
}

fn write_rows(t: &mut Tensor, v: &[f32]) -> Result<()> {
    if t.numel() != v.len() || t.dtype() != DType::F32 {
        return Err(ModelError::Invalid(format!(
            "tp log-probs: output {:?} {:?} must be F32 with {} elements",
            t.shape(),
            t.dtype(),
            v.len()
        )));
    }
    t.as_mut_slice::<f32>()?.copy_from_slice(v);
    Ok(())
}

/// Backward of [`token_logprobs_fwd`]: `dlogits [.., V/tp] = dlogp * (onehot - p) / T` on this
/// rank's vocabulary columns, with `p` normalised by the global `lse`.
#[allow(clippy::too_many_arguments)]
pub fn token_logprobs_bwd(
    dlogits: &mut Tensor,
    dlogp: &Tensor,
    logits: &Tensor,
    lse: &Tensor,
    targets: &Tensor,
    temperature: f32,
    range: &Range<usize>,
    vocab: usize,
) -> Result<()> {
    let tg = split_targets(targets, range, vocab)?;
    // Rows whose target lives elsewhere still get -c * p: they borrow local column 0 as a
    // target and give back its one-hot term below.
    let borrowed: Vec<i64> = tg
        .local
        .to_vec::<i64>()?
        .iter()
        .zip(&tg.ignored)
        .map(|(&x, &ign)| if x == IGNORE && !ign { 0 } else { x })
        .collect();
    let borrowed = Tensor::from_vec(borrowed, targets.shape())?;
    ops::token_logprobs_bwd(
        dlogits,
        dlogp,
        logits,
        lse,
        &borrowed,
        temperature,
        Some(IGNORE),
    )?;
    let g = dlogp.to_f32_vec()?;
    let v = dlogits.dim(dlogits.rank() - 1);
    let d = dlogits.as_mut_slice::<f32>()?;
    for i in 0..tg.mine.len() {
        if !tg.mine[i] && !tg.ignored[i] {
            d[i * v] -= g[i] / temperature;
        }
    }
    Ok(())
}
