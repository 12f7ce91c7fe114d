//! Resuming an optimizer from a checkpoint without holding the whole state: the file
//! [`AdamW::save_state`] writes (always the full model's moments, whatever sharded it) is
//! memory-mapped and checked up front, then each rank copies out only its slices, the same
//! slices [`load_shard`](crate::tp::load::load_shard) takes of the weights. For a 70B model
//! the full moments are 2 × 280 GB of f32: reading them whole on every rank is not an option.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use runtime::{DType, Tensor};
use safetensors::{Dtype as StDtype, SafeTensors};

use crate::config::LlamaConfig;
use crate::error::{io_err, ModelError, Result};
use crate::optim::{AdamW, OptimConfig};
use crate::params::{param_shapes, LlamaParams};
use crate::tp::shard::{local_shape, ShardPlan, Split};

/// The state sets of an optimizer file, by prefix, in [`AdamW::map_state`]'s order.
pub fn parts(master: bool) -> &'static [&'static str] {
    match master {
        true => &["m", "v", "master"],
        false => &["m", "v"],
    }
}

/// A mapped optimizer-state file whose every expected tensor was found F32 with its full shape.
pub struct StateFile {
    path: PathBuf,
    map: Mmap,
    /// `<prefix>.<param>` -> byte range in `map`.
    at: HashMap<String, Range<usize>>,
    full: LlamaConfig,
    master: bool,
}

impl StateFile {
    /// Maps `path` and checks it holds exactly the moments of a `full` model (and master
    /// weights when `master`): every error names the file and the tensor.
    pub fn open(path: &Path, full: &LlamaConfig, master: bool) -> Result<Self> {
        let f = File::open(path).map_err(io_err(path))?;
        // SAFETY: read-only mapping; like the weight loader we assume nobody truncates the
        // checkpoint while it is being resumed from.
        let map = unsafe { Mmap::map(&f) }.map_err(io_err(path))?;
        let st = SafeTensors::deserialize(&map).map_err(|e| ModelError::Safetensors {
            file: path.to_path_buf(),
            msg: format!("{e} (truncated or corrupt?)"),
        })?;
        let base = map.as_ptr() as usize;
        let mut found: HashMap<String, _> = st.tensors().into_iter().collect();
        let mut at = HashMap::new();
        for prefix in parts(master) {
            for (n, shape) in param_shapes(full) {
                let name = format!("{prefix}.{n}");
                let view = found
                    .remove(&name)
                    .ok_or_else(|| ModelError::MissingTensor {
                        name: name.clone(),
                        file: path.to_path_buf(),
                    })?;
                if view.shape() != shape {
                    return Err(ModelError::ShapeMismatch {
                        name,
                        file: path.to_path_buf(),
                        expected: shape,
                        found: view.shape().to_vec(),
                    });
                }
                if view.dtype() != StDtype::F32 {
                    return Err(ModelError::Invalid(format!(
                        "{}: optimizer tensor `{name}` is {:?}, expected F32",
                        path.display(),
                        view.dtype()
                    )));
                }
                let start = view.data().as_ptr() as usize - base;
                at.insert(name, start..start + view.data().len());
            }
        }
        if let Some(extra) = found.keys().min() {
            return Err(ModelError::Invalid(format!(
                "{}: unexpected optimizer tensor `{extra}` (master weights saved for a \
                 different precision?)",
                path.display()
            )));
        }
        drop(found);
        Ok(StateFile {
            path: path.to_path_buf(),
            map,
            at,
            full: full.clone(),
            master,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file holds master weights.
    pub fn has_master(&self) -> bool {
        self.master
    }

    /// Elements `range` (row-major, of `plan`'s slice) of parameter `i` (canonical order) of
    /// the state set `prefix`: what one ZeRO-1 rank keeps of one tensor, copied straight out
    /// of the mapping.
    pub fn read(
        &self,
        plan: &ShardPlan,
        prefix: &str,
        i: usize,
        range: Range<usize>,
    ) -> Result<Vec<f32>> {
        self.check_plan(plan)?;
        let splits = plan.splits();
        let (n, full, split) = splits.get(i).ok_or_else(|| {
            ModelError::Invalid(format!("{}: no parameter {i}", self.path.display()))
        })?;
        let local: usize = local_shape(full, split).iter().product();
        if range.start > range.end || range.end > local {
            return Err(ModelError::Invalid(format!(
                "{}: elements {range:?} of `{prefix}.{n}`'s shard of {local}",
                self.path.display()
            )));
        }
        self.read_split(prefix, n, full, split, range)
    }

    fn read_split(
        &self,
        prefix: &str,
        n: &str,
        full: &[usize],
        split: &Split,
        range: Range<usize>,
    ) -> Result<Vec<f32>> {
        let name = format!("{prefix}.{n}");
        let at = self
            .at
            .get(&name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.clone(),
                file: self.path.clone(),
            })?;
        let data = &self.map[at.clone()];
        let mut out = Vec::with_capacity(range.len());
        let mut take = |from: usize, len: usize| {
            let bytes = &data[from * 4..(from + len) * 4];
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("chunks of 4 bytes"))),
            );
        };
        match split {
            Split::Replicated => take(range.start, range.len()),
            // Whole rows: the shard is one contiguous run of the full tensor.
            Split::Rows(r) => {
                let row: usize = full[1..].iter().product();
                take(r.start * row + range.start, range.len());
            }
            // Column ranges: one run per row of the shard.
            Split::Cols(r) => {
                let cols = r.len();
                let mut pos = range.start;
                while pos < range.end {
                    let (row, col) = (pos / cols, pos % cols);
                    let len = (cols - col).min(range.end - pos);
                    take(row * full[1] + r.start + col, len);
                    pos += len;
                }
            }
        }
        Ok(out)
    }

    fn check_plan(&self, plan: &ShardPlan) -> Result<()> {
        if plan.full != self.full {
            return Err(ModelError::Invalid(format!(
                "{}: opened for another model than the shard plan's",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// `plan`'s shard of the state set `prefix`: one tensor's slice copied at a time.
    pub fn shard(&self, plan: &ShardPlan, prefix: &str) -> Result<LlamaParams> {
        self.check_plan(plan)?;
        let mut splits = plan.splits().into_iter();
        LlamaParams::from_ordered(&plan.local, |_, _| {
            let (n, full, split) = splits.next().expect("splits cover every parameter");
            let shape = local_shape(&full, &split);
            let len = shape.iter().product();
            let v = self.read_split(prefix, &n, &full, &split, 0..len)?;
            Ok(Tensor::from_vec(v, &shape)?)
        })
    }

    /// `plan`'s shard of the whole optimizer, `step` steps in (the full state with a
    /// one-rank plan).
    pub fn load(&self, plan: &ShardPlan, config: OptimConfig, step: u64) -> Result<AdamW> {
        Ok(AdamW {
            config,
            m: self.shard(plan, "m")?,
            v: self.shard(plan, "v")?,
            master: match self.master {
                true => Some(self.shard(plan, "master")?),
                false => None,
            },
            step,
        })
    }
}

/// An optimizer for a `local` model whose state lives elsewhere (a ZeRO-1 shard): every
/// moment (and master weight) is an empty tensor, so it holds no memory.
pub fn empty_state(
    local: &LlamaConfig,
    config: OptimConfig,
    master: bool,
    step: u64,
) -> Result<AdamW> {
    let empty = || {
        LlamaParams::from_ordered(local, |_, _| {
            Ok(Tensor::zeros(&[0], DType::F32, &runtime::Device::Cpu)?)
        })
    };
    Ok(AdamW {
        config,
        m: empty()?,
        v: empty()?,
        master: match master {
            true => Some(empty()?),
            false => None,
        },
        step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::OptimConfig;
    use crate::safetensors_io;
    use crate::tp::load::slice_params;
    use crate::Llama;

    fn model() -> Llama {
        // 4 query heads, 2 KV heads: TP=4 replicates them, TP=2 splits them.
        let c = LlamaConfig::new(32, 2, 4, 2, 48, 64, 16, false).unwrap();
        Llama::random(c, DType::F32, 5).unwrap()
    }

    /// An optimizer state file whose `m` is the weights and `v` their negation (distinct
    /// values everywhere, so any misplaced element shows).
    fn saved(dir: &Path, m: &Llama) -> (PathBuf, AdamW) {
        let mut opt = AdamW::new(m, OptimConfig::default()).unwrap();
        opt.m = m.params.clone();
        for (v, w) in opt.v.tensors_mut().into_iter().zip(m.params.tensors()) {
            let neg: Vec<f32> = w.to_f32_vec().unwrap().iter().map(|x| -x).collect();
            *v = Tensor::from_vec(neg, w.shape()).unwrap();
        }
        let path = dir.join("optimizer.safetensors");
        opt.save_state(&m.config, &path).unwrap();
        (path, opt)
    }

    fn values(p: &LlamaParams) -> Vec<Vec<f32>> {
        p.tensors()
            .iter()
            .map(|t| t.to_f32_vec().unwrap())
            .collect()
    }

    #[test]
    fn shards_and_ranges_equal_slicing_the_full_state() {
        let dir = tempfile::tempdir().unwrap();
        let m = model();
        let (path, opt) = saved(dir.path(), &m);
        let file = StateFile::open(&path, &m.config, false).unwrap();
        for tp in [1, 2, 4] {
            for rank in 0..tp {
                let plan = ShardPlan::new(&m.config, tp, rank).unwrap();
                let want = opt.map_state(|p| slice_params(&plan, p)).unwrap();
                let got = file.load(&plan, opt.config, 7).unwrap();
                assert_eq!(got.step, 7);
                assert_eq!(values(&got.m), values(&want.m), "tp {tp} rank {rank}");
                assert_eq!(values(&got.v), values(&want.v), "tp {tp} rank {rank}");
                for (i, w) in values(&want.v).iter().enumerate() {
                    // Ranges that start and end inside rows of a column split.
                    let n = w.len();
                    for r in [0..n, 1..n - 1, n / 3..n / 2, n..n] {
                        let got = file.read(&plan, "v", i, r.clone()).unwrap();
                        assert_eq!(got, w[r.clone()], "tp {tp} rank {rank} tensor {i} {r:?}");
                    }
                    assert!(file.read(&plan, "v", i, 0..n + 1).is_err());
                }
            }
        }
    }

    #[test]
    fn bad_files_name_the_file_and_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let m = model();
        let (path, opt) = saved(dir.path(), &m);
        let shown = path.display().to_string();
        let err = |r: Result<StateFile>| r.err().expect("refused").to_string();

        // Master weights expected but not saved.
        let e = err(StateFile::open(&path, &m.config, true));
        assert!(
            e.contains("master.model.embed_tokens.weight") && e.contains(&shown),
            "{e}"
        );
        // Another model's shapes.
        let other = LlamaConfig::new(32, 2, 4, 2, 64, 64, 16, false).unwrap();
        let e = err(StateFile::open(&path, &other, false));
        assert!(
            e.contains("mlp") && e.contains(&shown) && e.contains("shape"),
            "{e}"
        );

        // A half-precision moment, an extra tensor, a truncated file.
        let named = |p: &LlamaParams, prefix: &str| -> Vec<(String, Tensor)> {
            p.named(&m.config)
                .into_iter()
                .map(|(n, t)| (format!("{prefix}.{n}"), t.clone()))
                .collect()
        };
        let mut all = named(&opt.m, "m");
        all.extend(named(&opt.v, "v"));
        let write = |ts: &[(String, Tensor)], dtype: DType| {
            let refs: Vec<(String, &Tensor)> = ts.iter().map(|(n, t)| (n.clone(), t)).collect();
            safetensors_io::save(&path, &refs, dtype).unwrap();
        };
        write(&all, DType::BF16);
        let e = err(StateFile::open(&path, &m.config, false));
        assert!(
            e.contains("m.model.embed_tokens.weight") && e.contains("F32"),
            "{e}"
        );
        let mut extra = all.clone();
        extra.push(("master.lm_head.weight".into(), all[0].1.clone()));
        write(&extra, DType::F32);
        let e = err(StateFile::open(&path, &m.config, false));
        assert!(
            e.contains("master.lm_head.weight") && e.contains(&shown),
            "{e}"
        );
        write(&all, DType::F32);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
        let e = err(StateFile::open(&path, &m.config, false));
        assert!(e.contains(&shown), "{e}");
    }
}
