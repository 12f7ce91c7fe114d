//! Sharded loading (each rank copies only its slices out of the memory-mapped safetensors) and
//! the way back: gathering shards into full tensors, and saving one Hugging Face folder.

use std::path::Path;

use runtime::comm::Communicator;
use runtime::{DType, Tensor};

use crate::error::{io_err, ModelError, Result};
use crate::params::LlamaParams;
use crate::safetensors_io::WeightFiles;
pub use crate::tp::save::save_file;
use crate::tp::save::write_folder_files;
use crate::tp::shard::{local_shape, ShardPlan, Split};

/// Copies `split` of the `[rows, cols]` (or 1-D) row-major buffer `data` with elements of
/// `elem` bytes: rows are one contiguous range, columns one range per row.
fn slice_bytes(data: &[u8], full: &[usize], split: &Split, elem: usize) -> Vec<u8> {
    match split {
        Split::Replicated => data.to_vec(),
        Split::Rows(r) => {
            let row = full[1..].iter().product::<usize>() * elem;
            data[r.start * row..r.end * row].to_vec()
        }
        Split::Cols(r) => {
            let row = full[1] * elem;
            data.chunks_exact(row)
                .flat_map(|c| &c[r.start * elem..r.end * elem])
                .copied()
                .collect()
        }
    }
}

/// This rank's shard of the weights in `files`, converted to `dtype`.
pub fn load_shard(plan: &ShardPlan, files: &WeightFiles, dtype: DType) -> Result<LlamaParams> {
    let mut splits = plan.splits().into_iter();
    LlamaParams::from_ordered(&plan.local, |name, shape| {
        let (n, full, split) = splits.next().expect("splits cover every parameter");
        debug_assert_eq!(n, name);
        let raw = files.raw(name, &full)?;
        let bytes = slice_bytes(raw.data, &full, &split, raw.elem);
        raw.to_tensor(&bytes, shape, dtype)
    })
}

/// This rank's shard of an in-memory full model (e.g. random weights, or a tied variant).
pub fn slice_params(plan: &ShardPlan, full: &LlamaParams) -> Result<LlamaParams> {
    let mut it = plan.splits().into_iter().zip(full.tensors());
    LlamaParams::from_ordered(&plan.local, |_, shape| {
        let ((_, fs, split), t) = it.next().expect("splits cover every parameter");
        let v = t.to_f32_vec()?;
        let bytes: &[u8] = bytemuck::cast_slice(&v);
        let out = slice_bytes(bytes, &fs, &split, 4);
        let s = Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, f32>(&out), shape)?;
        Ok(if t.dtype() == DType::F32 {
            s
        } else {
            s.cast(t.dtype())?
        })
    })
}

/// What the copies of a replicated tensor (norms; KV heads under [`KvLayout::Replicated`])
/// hold across ranks.
///
/// [`KvLayout::Replicated`]: crate::tp::KvLayout::Replicated
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replicas {
    /// Equal copies (weights; gradients after
    /// [`TpModel::reduce_replicated_grads`](crate::tp::TpModel::reduce_replicated_grads)):
    /// the first holder's is taken.
    Identical,
    /// Each KV copy holds a part of the gradient (straight out of the backward): the copies
    /// are summed. Norm gradients are already whole on every rank and are taken from rank 0.
    Partial,
}

/// Every rank's split of every parameter: what assembling a full tensor from the shards
/// needs to know.
pub(crate) struct Gatherer {
    plan: ShardPlan,
    plans: Vec<ShardPlan>,
    splits: Vec<Vec<(String, Vec<usize>, Split)>>,
}

impl Gatherer {
    pub(crate) fn new(plan: &ShardPlan) -> Result<Self> {
        let plans: Vec<ShardPlan> = (0..plan.tp)
            .map(|r| plan.for_rank(r))
            .collect::<Result<_>>()?;
        let splits = plans.iter().map(ShardPlan::splits).collect();
        Ok(Gatherer {
            plan: plan.clone(),
            plans,
            splits,
        })
    }

    /// Every parameter's HF name, full shape and this rank's split, in canonical order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &(String, Vec<usize>, Split)> {
        self.splits[self.plan.rank].iter()
    }
}

/// The full-shape values of parameter `i` (canonical order) assembled from every rank's
/// shard `t` of it; a collective, every rank gets the result.
pub(crate) fn gather_one(
    g: &Gatherer,
    comm: &mut dyn Communicator,
    i: usize,
    t: &Tensor,
    replicas: Replicas,
) -> Result<Vec<f32>> {
    let plan = &g.plan;
    let (name, full_shape, split) = &g.splits[plan.rank][i];
    if t.shape() != local_shape(full_shape, split) {
        return Err(ModelError::Invalid(format!(
            "tp gather: `{name}` on rank {} has shape {:?}, not its shard's",
            plan.rank,
            t.shape()
        )));
    }
    let n = t.numel();
    let mut all = Tensor::zeros(&[plan.tp * n], DType::F32, &runtime::Device::Cpu)?;
    let t = t.to_device(&runtime::Device::Cpu)?;
    let t = match t.dtype() {
        DType::F32 => t,
        _ => t.cast(DType::F32)?,
    };
    comm.all_gather(&t, &mut all)?;
    drop(t);
    let all = all.to_f32_vec()?;
    let numel: usize = full_shape.iter().product();
    let mut out = vec![0f32; numel];
    let kv = name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight");
    for (r, part) in all.chunks_exact(n.max(1)).enumerate().take(plan.tp) {
        let split = &g.splits[r][i].2;
        let take = match split {
            Split::Replicated => r == 0,
            _ if kv && !g.plans[r].kv_owner() => replicas == Replicas::Partial,
            _ => true,
        };
        if take {
            place(&mut out, part, full_shape, split);
        }
    }
    Ok(out)
}

/// Assembles every rank's `local` tensors (weights or gradients of the shard `plan`) into
/// full-shape F32 tensors, in canonical order; a collective, so every rank calls it and
/// every rank gets the result. Holds the whole model: checkpoints use [`save`] and
/// [`save_file`], which stream.
pub fn gather(
    plan: &ShardPlan,
    comm: &mut dyn Communicator,
    local: &LlamaParams,
    replicas: Replicas,
) -> Result<LlamaParams> {
    let g = Gatherer::new(plan)?;
    let mut it = local.tensors().into_iter().enumerate();
    LlamaParams::from_ordered(&plan.full, |_, full_shape| {
        let (i, t) = it.next().expect("local params cover every parameter");
        let out = gather_one(&g, comm, i, t, replicas)?;
        Ok(Tensor::from_vec(out, full_shape)?)
    })
}

/// Adds `part` (the shard `split`) into the full row-major buffer `out`.
fn place(out: &mut [f32], part: &[f32], full: &[usize], split: &Split) {
    let add = |dst: &mut [f32], src: &[f32]| dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
    match split {
        Split::Replicated => add(out, part),
        Split::Rows(r) => {
            let row: usize = full[1..].iter().product();
            add(&mut out[r.start * row..r.end * row], part);
        }
        Split::Cols(r) => {
            for (dst, src) in out
                .chunks_exact_mut(full[1])
                .zip(part.chunks_exact(r.len()))
            {
                add(&mut dst[r.clone()], src);
            }
        }
    }
}

/// Saves the full model assembled from every rank's shard as one Hugging Face folder in `dir`
/// (weights as `dtype`, config, tokenizer files from `tokenizer_from`); a collective over the
/// TP group. The tensors are gathered one at a time and streamed to disk by rank 0 (see
/// [`save_file`]), each file written atomically; every rank returns once the folder is
/// complete.
pub fn save(
    plan: &ShardPlan,
    comm: &mut dyn Communicator,
    local: &LlamaParams,
    dir: &Path,
    dtype: DType,
    tokenizer_from: Option<&Path>,
) -> Result<()> {
    let writer = plan.rank == 0;
    let prepared = match writer {
        true => std::fs::create_dir_all(dir).map_err(io_err(dir)),
        false => Ok(()),
    };
    let file = dir.join("model.safetensors");
    let path = (writer && prepared.is_ok()).then_some(file.as_path());
    let streamed = save_file(plan, comm, &[("", local)], path, dtype);
    let written = prepared.and(streamed).and_then(|()| match writer {
        true => write_folder_files(&plan.full, dir, dtype, tokenizer_from),
        false => Ok(()),
    });
    // Everyone waits for the write, even when it failed, so no rank is left in a collective.
    comm.barrier()?;
    written
}
