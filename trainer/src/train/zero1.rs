//! ZeRO stage 1: AdamW state sharded across the data-parallel ranks.
//!
//! The parameters, in the canonical order `dp.rs` buckets them, form one flat space of `N`
//! elements, cut into `world` contiguous shards of `k = ceil(N / world)` (the last ones
//! shorter or empty). Rank `r` keeps the moments (and f32 master weights, when the model
//! computes in a lower precision) of shard `r` only, so its optimizer state is ~1/world of
//! the replicated one. A step reduce-scatters the gradients (each element summed in rank order,
//! the same sum the all-reduce path takes, so the two paths give bit-identical updates when
//! clipping is off), clips by the global norm (shard sums of squares summed over ranks),
//! updates its shard, and all-gathers the weights so every replica holds the same model.
//!
//! Collectives are bucketed like the gradient all-reduce: bucket `j` carries element range
//! `j*c..(j+1)*c` of every rank's shard, laid out rank after rank, which is exactly the
//! input layout reduce-scatter and all-gather split by rank.

use std::borrow::Cow;
use std::ops::Range;

use model::optim::{AdamW, StepStats};
use model::tp::state::{self, StateFile};
use model::tp::ShardPlan;
use model::{Llama, LlamaParams};
use runtime::{ops, DType, Device, Tensor};

use crate::dp::{DataParallel, DpError, SyncStats};

type Result<T> = std::result::Result<T, DpError>;

/// One piece of this rank's shard lying in one parameter tensor.
struct Segment {
    /// Index of the tensor in canonical order.
    tensor: usize,
    /// Element offset inside that tensor.
    offset: usize,
    /// Element offset inside this rank's shard.
    at: usize,
    m: Tensor,
    v: Tensor,
    master: Option<Tensor>,
    /// Matrices take weight decay, norms do not (as [`AdamW`]).
    decay: bool,
}

impl Segment {
    fn len(&self) -> usize {
        self.m.numel()
    }
}

/// This rank's share of the AdamW state and the flat layout of the parameters.
pub struct Zero1 {
    world: usize,
    /// Parameter count `N`.
    total: usize,
    /// Shard length `ceil(N / world)` (the padded length every collective uses).
    k: usize,
    /// Start of each tensor in the flat space, plus `N` at the end.
    starts: Vec<usize>,
    shapes: Vec<Vec<usize>>,
    segs: Vec<Segment>,
}

fn f32_err(what: &str, t: &Tensor) -> DpError {
    DpError::Invalid(format!(
        "zero1: {what} tensor of shape {:?} is {:?}, expected F32",
        t.shape(),
        t.dtype()
    ))
}

/// A tensor's values as f32, borrowed when it already is host f32.
fn f32_view(t: &Tensor) -> Result<Cow<'_, [f32]>> {
    if t.dtype() == DType::F32 {
        if let Ok(s) = t.as_slice::<f32>() {
            return Ok(Cow::Borrowed(s));
        }
    }
    Ok(Cow::Owned(t.to_f32_vec()?))
}

fn flat_vec(v: Vec<f32>) -> Result<Tensor> {
    let n = v.len();
    Ok(Tensor::from_vec(v, &[n])?)
}

impl Zero1 {
    /// Takes this rank's shard of `opt`'s state (fresh or loaded from a checkpoint) and
    /// releases the full moments and master weights it held (they become empty tensors;
    /// [`Zero1::gather_state`] rebuilds them for checkpoints).
    pub fn new(opt: &mut AdamW, model: &Llama, rank: usize, world: usize) -> Result<Self> {
        let z = {
            let (ms, vs) = (opt.m.tensors(), opt.v.tensors());
            let masters = opt.master.as_ref().map(|p| p.tensors());
            let has_master = masters.is_some();
            let numels: Vec<usize> = model.params.tensors().iter().map(|t| t.numel()).collect();
            let mut fetch = |set: usize, i: usize, r: Range<usize>| -> Result<Cow<'_, [f32]>> {
                let (src, what) = match set {
                    0 => (ms[i], "moment m"),
                    1 => (vs[i], "moment v"),
                    _ => (masters.as_ref().expect("asked only when kept")[i], "master"),
                };
                if src.dtype() != DType::F32 || src.numel() != numels[i] {
                    return Err(f32_err(what, src));
                }
                Ok(match f32_view(src)? {
                    Cow::Borrowed(s) => Cow::Borrowed(&s[r]),
                    Cow::Owned(v) => Cow::Owned(v[r].to_vec()),
                })
            };
            Self::build(model, rank, world, has_master, &mut fetch)?
        };
        let empty = || Tensor::zeros(&[0], DType::F32, &Device::Cpu);
        for t in opt.m.tensors_mut().into_iter().chain(opt.v.tensors_mut()) {
            *t = empty()?;
        }
        if let Some(p) = opt.master.as_mut() {
            for t in p.tensors_mut() {
                *t = empty()?;
            }
        }
        Ok(z)
    }

    /// This rank's shard read straight from a checkpoint's mapped optimizer file (`plan`: the
    /// TP shard `model` is, a one-rank plan without TP): only the tensors overlapping the
    /// shard are read, each only over the range kept, so the full state is never in memory. The
    /// optimizer beside it should hold no state ([`model::tp::state::empty_state`]).
    pub fn from_file(
        file: &StateFile,
        plan: &ShardPlan,
        model: &Llama,
        rank: usize,
        world: usize,
    ) -> Result<Self> {
        let err = |e: model::ModelError| DpError::Invalid(format!("zero1 resume: {e}"));
        let mut fetch = |set: usize, i: usize, r: Range<usize>| -> Result<Cow<'_, [f32]>> {
            let prefix = state::parts(true)[set];
            Ok(Cow::Owned(file.read(plan, prefix, i, r).map_err(err)?))
        };
        Self::build(model, rank, world, file.has_master(), &mut fetch)
    }

    /// Lays out the flat space of `model` and copies this rank's pieces of each state set
    /// (`fetch(set, tensor, elements)`: 0 = m, 1 = v, 2 = master) out of the tensors
    /// overlapping it.
    fn build<'a>(
        model: &Llama,
        rank: usize,
        world: usize,
        has_master: bool,
        fetch: &mut dyn FnMut(usize, usize, Range<usize>) -> Result<Cow<'a, [f32]>>,
    ) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(DpError::Invalid(format!(
                "zero1: rank {rank} of a group of {world}"
            )));
        }
        let params = model.params.tensors();
        let shapes: Vec<Vec<usize>> = params.iter().map(|t| t.shape().to_vec()).collect();
        let mut starts = Vec::with_capacity(params.len() + 1);
        let mut total = 0;
        for t in &params {
            starts.push(total);
            total += t.numel();
        }
        starts.push(total);
        let k = total.div_ceil(world);
        let (lo, hi) = ((rank * k).min(total), ((rank + 1) * k).min(total));
        let mut segs = Vec::new();
        for (i, t) in params.iter().enumerate() {
            let (s, e) = (starts[i].max(lo), starts[i + 1].min(hi));
            if s >= e {
                continue;
            }
            let (offset, len) = (s - starts[i], e - s);
            let mut piece = |set: usize| -> Result<Tensor> {
                flat_vec(fetch(set, i, offset..offset + len)?.into_owned())
            };
            segs.push(Segment {
                tensor: i,
                offset,
                at: s - lo,
                m: piece(0)?,
                v: piece(1)?,
                master: match has_master {
                    true => Some(piece(2)?),
                    false => None,
                },
                decay: t.rank() >= 2,
            });
        }
        Ok(Zero1 {
            world,
            total,
            k,
            starts,
            shapes,
            segs,
        })
    }

    /// Bytes of optimizer state this rank holds (moments, and master weights when kept).
    pub fn state_bytes(&self) -> usize {
        let per = |s: &Segment| s.len() * (2 + s.master.is_some() as usize);
        self.segs.iter().map(per).sum::<usize>() * DType::F32.size_in_bytes()
    }

    /// Elements per rank in one bucket of `bucket_bytes`.
    fn chunk(&self, bucket_bytes: usize) -> usize {
        (bucket_bytes / DType::F32.size_in_bytes() / self.world).max(1)
    }

    /// Copies flat elements `start..start + dst.len()` (zeros past `N`).
    fn read_flat(&self, views: &[Cow<'_, [f32]>], start: usize, dst: &mut [f32]) {
        dst.fill(0.0);
        let end = (start + dst.len()).min(self.total);
        let mut pos = start;
        while pos < end {
            let i = self.starts.partition_point(|&s| s <= pos) - 1;
            let n = (self.starts[i + 1].min(end)) - pos;
            let o = pos - self.starts[i];
            dst[pos - start..pos - start + n].copy_from_slice(&views[i][o..o + n]);
            pos += n;
        }
    }

    /// The sum over ranks of `grads`, this rank's shard of it (padded to `k`).
    fn reduce_scatter(
        &self,
        dp: &mut DataParallel,
        grads: &LlamaParams,
        bucket_bytes: usize,
    ) -> Result<Vec<f32>> {
        let ts = grads.tensors();
        for t in &ts {
            if t.dtype() != DType::F32 {
                return Err(f32_err("gradient", t));
            }
        }
        let views = ts.iter().map(|t| f32_view(t)).collect::<Result<Vec<_>>>()?;
        let c = self.chunk(bucket_bytes);
        let mut out = vec![0f32; self.k];
        let mut stats = SyncStats {
            elements: self.total,
            ..SyncStats::default()
        };
        for j in (0..self.k).step_by(c) {
            let len = c.min(self.k - j);
            let mut buf = vec![0f32; self.world * len];
            for r in 0..self.world {
                self.read_flat(&views, r * self.k + j, &mut buf[r * len..(r + 1) * len]);
            }
            let input = flat_vec(buf)?;
            let mut piece = Tensor::zeros(&[len], DType::F32, &Device::Cpu)?;
            dp.comm().reduce_scatter_sum(&input, &mut piece)?;
            out[j..j + len].copy_from_slice(piece.as_slice::<f32>()?);
            stats.collectives += 1;
            stats.bytes += input.numel() * DType::F32.size_in_bytes();
        }
        dp.record(stats);
        Ok(out)
    }

    /// Every rank's `shard` (padded to `k`) concatenated and cut to `N`: the flat space.
    fn all_gather(
        &self,
        dp: &mut DataParallel,
        shard: &[f32],
        bucket_bytes: usize,
    ) -> Result<Vec<f32>> {
        let c = self.chunk(bucket_bytes);
        let mut flat = vec![0f32; self.world * self.k];
        let mut stats = SyncStats {
            elements: self.total,
            ..SyncStats::default()
        };
        for j in (0..self.k).step_by(c) {
            let len = c.min(self.k - j);
            let input = flat_vec(shard[j..j + len].to_vec())?;
            let mut all = Tensor::zeros(&[self.world * len], DType::F32, &Device::Cpu)?;
            dp.comm().all_gather(&input, &mut all)?;
            let all = all.as_slice::<f32>()?;
            for r in 0..self.world {
                let at = r * self.k + j;
                flat[at..at + len].copy_from_slice(&all[r * len..(r + 1) * len]);
            }
            stats.collectives += 1;
            stats.bytes += len * DType::F32.size_in_bytes();
        }
        dp.record(stats);
        flat.truncate(self.total);
        Ok(flat)
    }

    /// Writes the flat space into `params` (cast to each tensor's dtype and device).
    fn scatter_into(&self, flat: &[f32], params: &mut LlamaParams) -> Result<()> {
        for (i, t) in params.tensors_mut().into_iter().enumerate() {
            let src = &flat[self.starts[i]..self.starts[i + 1]];
            if t.dtype() == DType::F32 {
                if let Ok(dst) = t.as_mut_slice::<f32>() {
                    dst.copy_from_slice(src);
                    continue;
                }
            }
            let (dtype, device) = (t.dtype(), *t.device());
            *t = Tensor::from_vec(src.to_vec(), &self.shapes[i])?
                .cast(dtype)?
                .to_device(&device)?;
        }
        Ok(())
    }

    /// One optimizer step on the unsynchronised per-rank `grads`: reduce-scatter, global-norm
    /// clip, AdamW on this rank's shard, all-gather of the weights into `model`. Advances
    /// `opt.step` (its config gives the hyper-parameters) and returns what
    /// [`AdamW::step_with_lr`] would.
    pub fn step(
        &mut self,
        dp: &mut DataParallel,
        opt: &mut AdamW,
        model: &mut Llama,
        grads: &LlamaParams,
        lr: f32,
    ) -> Result<StepStats> {
        self.step_with(dp, opt, model, grads, lr, &|_| true, &mut Ok)
    }

    /// [`Zero1::step`] on one shard of a larger model (a tensor-parallel rank's): the squared
    /// norm counts only the tensors `counted` selects (a replicated copy is counted by one
    /// rank) and `outer` completes the group's sum (over the other TP ranks).
    #[allow(clippy::too_many_arguments)]
    pub fn step_with(
        &mut self,
        dp: &mut DataParallel,
        opt: &mut AdamW,
        model: &mut Llama,
        grads: &LlamaParams,
        lr: f32,
        counted: &dyn Fn(usize) -> bool,
        outer: &mut dyn FnMut(f64) -> Result<f64>,
    ) -> Result<StepStats> {
        let bucket = dp.bucket_bytes;
        let g = self.reduce_scatter(dp, grads, bucket)?;
        // One running sum over the shard in element order (segments are contiguous).
        let mut local = 0f64;
        for s in self.segs.iter().filter(|s| counted(s.tensor)) {
            for &x in &g[s.at..s.at + s.len()] {
                local += x as f64 * x as f64;
            }
        }
        let grad_norm = outer(dp.sum_f64(&[local])?[0])?.sqrt();
        if !grad_norm.is_finite() {
            return Err(DpError::Invalid(format!(
                "zero1: gradient norm is {grad_norm}; refusing to step"
            )));
        }
        let c = opt.config;
        let mut p = opt.next_step(lr, grad_norm);
        let clip_scale = p.grad_scale;
        let mut w = vec![0f32; self.k];
        {
            let params = model.params.tensors();
            for s in &mut self.segs {
                let len = s.len();
                p.weight_decay = if s.decay { c.weight_decay } else { 0.0 };
                let gt = flat_vec(g[s.at..s.at + len].to_vec())?;
                let mut own;
                let wt = match s.master.as_mut() {
                    Some(m) => m,
                    None => {
                        let src = f32_view(params[s.tensor])?;
                        own = flat_vec(src[s.offset..s.offset + len].to_vec())?;
                        &mut own
                    }
                };
                ops::adamw_step(wt, &gt, &mut s.m, &mut s.v, None, &p)?;
                w[s.at..s.at + len].copy_from_slice(wt.as_slice::<f32>()?);
            }
        }
        let flat = self.all_gather(dp, &w, bucket)?;
        self.scatter_into(&flat, &mut model.params)?;
        Ok(StepStats {
            lr,
            grad_norm,
            clip_scale,
        })
    }

    /// The whole AdamW state (the layout [`AdamW::save_state`] writes without ZeRO-1),
    /// assembled on every rank by all-gathers: a collective, every rank must call it.
    pub fn gather_state(&self, dp: &mut DataParallel, opt: &AdamW, model: &Llama) -> Result<AdamW> {
        let bucket = dp.bucket_bytes;
        let mut full = |pick: &dyn Fn(&Segment) -> &Tensor| -> Result<LlamaParams> {
            let mut shard = vec![0f32; self.k];
            for s in &self.segs {
                shard[s.at..s.at + s.len()].copy_from_slice(pick(s).as_slice::<f32>()?);
            }
            let flat = self.all_gather(dp, &shard, bucket)?;
            let mut p = LlamaParams::zeros(&model.config, DType::F32, &Device::Cpu)
                .map_err(|e| DpError::Invalid(format!("zero1: {e}")))?;
            self.scatter_into(&flat, &mut p)?;
            Ok(p)
        };
        let m = full(&|s| &s.m)?;
        let v = full(&|s| &s.v)?;
        let has_master = opt.master.is_some();
        let master = match has_master {
            // Every rank takes this branch together (same model dtype), so the gathers match;
            // a rank whose shard is empty contributes zeros that fall in the padding.
            true => Some(full(&|s| s.master.as_ref().unwrap_or(&s.m))?),
            false => None,
        };
        Ok(AdamW {
            config: opt.config,
            m,
            v,
            master,
            step: opt.step,
        })
    }
}

/// Bytes of the replicated AdamW state `opt` holds (moments, and master weights when kept).
pub fn full_state_bytes(opt: &AdamW) -> usize {
    let count = |p: &LlamaParams| p.tensors().iter().map(|t| t.numel()).sum::<usize>();
    let n = count(&opt.m) + count(&opt.v) + opt.master.as_ref().map_or(0, count);
    n * DType::F32.size_in_bytes()
}
