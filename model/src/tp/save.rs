//! Saving a sharded model as one Hugging Face folder without assembling it anywhere: the
//! ranks gather one full tensor at a time, in the order the safetensors file stores them, and
//! the writing rank streams it to disk while the others drop it. Peak extra memory per rank
//! is a few copies of the largest tensor, not the model (a 70B model never fits one rank).
//!
//! The file is byte-identical to what [`safetensors_io::save`](crate::safetensors_io::save)
//! writes for the assembled tensors: the header comes from the safetensors crate's own
//! [`Metadata`] with the offsets it would compute (tensors sorted by descending dtype, then
//! name; header padded with spaces to 8 bytes).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use runtime::comm::Communicator;
use runtime::{DType, Tensor};
use safetensors::tensor::{Metadata, TensorInfo};

use crate::error::{io_err, ModelError, Result};
use crate::params::LlamaParams;
use crate::safetensors_io::st_dtype;
use crate::tp::load::{gather_one, Gatherer, Replicas};
use crate::tp::shard::ShardPlan;

/// One tensor of the file: its name, and where its shards live (`part`, canonical index).
struct Entry {
    name: String,
    part: usize,
    index: usize,
    shape: Vec<usize>,
}

/// The file's header (length prefix included) and its tensors in storage order.
fn layout(entries: Vec<Entry>, dtype: DType, path: &Path) -> Result<(Vec<u8>, Vec<Entry>)> {
    let mut entries = entries;
    // Every tensor has the same dtype here, so the crate's order reduces to the names'.
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut offset = 0;
    let infos = entries
        .iter()
        .map(|e| {
            let n = e.shape.iter().product::<usize>() * dtype.size_in_bytes();
            let info = TensorInfo {
                dtype: st_dtype(dtype),
                shape: e.shape.clone(),
                data_offsets: (offset, offset + n),
            };
            offset += n;
            (e.name.clone(), info)
        })
        .collect();
    let st_err = |msg: String| ModelError::Safetensors {
        file: path.to_path_buf(),
        msg,
    };
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let meta = Metadata::new(Some(meta), infos).map_err(|e| st_err(e.to_string()))?;
    let mut header = serde_json::to_string(&meta)
        .map_err(|e| st_err(e.to_string()))?
        .into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    Ok((out, entries))
}

/// `v` (a full tensor of shape `shape`) as the bytes of `dtype`, converted as
/// [`Tensor::cast`] converts.
fn to_bytes(v: Vec<f32>, shape: &[usize], dtype: DType) -> Result<Vec<u8>> {
    if dtype == DType::F32 {
        return Ok(bytemuck::pod_collect_to_vec::<f32, u8>(&v));
    }
    let t = Tensor::from_vec(v, shape)?.cast(dtype)?;
    Ok(match dtype {
        DType::BF16 => bytemuck::cast_slice::<bf16, u8>(t.as_slice::<bf16>()?).to_vec(),
        DType::F16 => bytemuck::cast_slice::<f16, u8>(t.as_slice::<f16>()?).to_vec(),
        other => {
            return Err(ModelError::Invalid(format!(
                "tp save: weights cannot be written as {other:?}"
            )))
        }
    })
}

/// The temporary file the writer streams into, renamed over `path` once complete.
struct Sink {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
}

impl Sink {
    fn create(path: &Path) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let f = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(Sink {
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::with_capacity(1 << 20, f),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(io_err(&self.path))
    }

    fn finish(self) -> Result<()> {
        let (path, tmp) = (self.path.clone(), self.tmp.clone());
        let done = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &path));
        done.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            ModelError::Io { path, source: e }
        })
    }

    fn discard(self) {
        let tmp = self.tmp.clone();
        drop(self.out);
        let _ = std::fs::remove_file(tmp);
    }
}

/// Writes one safetensors file holding the full-shape tensors assembled from `parts`: each
/// `(prefix, shard)` contributes `prefix + name` for every parameter of the shard `plan`.
/// A collective over the TP group (every rank calls it with the same parts): the rank given
/// `path` writes (atomically: temporary file, fsync, rename), the others pass `None`. A
/// failed write does not stop the gathers, so no rank is left waiting in one; the writer
/// returns the error after the last tensor.
pub fn save_file(
    plan: &ShardPlan,
    comm: &mut dyn Communicator,
    parts: &[(&str, &LlamaParams)],
    path: Option<&Path>,
    dtype: DType,
) -> Result<()> {
    let g = Gatherer::new(plan)?;
    let mut entries = Vec::new();
    for (p, (prefix, _)) in parts.iter().enumerate() {
        for (i, (name, shape, _)) in g.names().enumerate() {
            entries.push(Entry {
                name: format!("{prefix}{name}"),
                part: p,
                index: i,
                shape: shape.to_vec(),
            });
        }
    }
    let shown = path.map_or_else(|| PathBuf::from("<not written here>"), Path::to_path_buf);
    let (header, order) = layout(entries, dtype, &shown)?;
    let tensors: Vec<Vec<&Tensor>> = parts.iter().map(|(_, p)| p.tensors()).collect();
    let mut failed = None;
    let mut sink = match path.map(Sink::create) {
        Some(Ok(mut s)) => match s.write(&header) {
            Ok(()) => Some(s),
            Err(e) => {
                failed = Some(e);
                s.discard();
                None
            }
        },
        Some(Err(e)) => {
            failed = Some(e);
            None
        }
        None => None,
    };
    for e in &order {
        let full = match gather_one(
            &g,
            comm,
            e.index,
            tensors[e.part][e.index],
            Replicas::Identical,
        ) {
            Ok(v) => v,
            Err(err) => {
                if let Some(s) = sink.take() {
                    s.discard();
                }
                return Err(err);
            }
        };
        if let Some(s) = sink.as_mut() {
            if let Err(err) = to_bytes(full, &e.shape, dtype).and_then(|b| s.write(&b)) {
                failed = Some(err);
                if let Some(s) = sink.take() {
                    s.discard();
                }
            }
        }
    }
    match (failed, sink) {
        (Some(e), _) => Err(e),
        (None, Some(s)) => s.finish(),
        (None, None) => Ok(()),
    }
}

pub(crate) use crate::folder::write_folder_files;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LlamaConfig;
    use crate::tp::{run_ranks, TpModel};
    use crate::Llama;
    use runtime::comm::CommError;
    use serde_json::json;

    fn model(heads: usize, kv: usize, tied: bool) -> Llama {
        let cfg = LlamaConfig::from_json(json!({
            "model_type": "llama", "hidden_size": 32, "intermediate_size": 48,
            "num_hidden_layers": 2, "num_attention_heads": heads, "num_key_value_heads": kv,
            "head_dim": 8, "vocab_size": 64, "max_position_embeddings": 16,
            "rms_norm_eps": 1e-5, "tie_word_embeddings": tied,
        }))
        .unwrap();
        Llama::random(cfg, DType::F32, 7).unwrap()
    }

    /// Records the size of every all-gather's output buffer.
    struct Recorder<'a> {
        inner: &'a mut dyn Communicator,
        gathers: Vec<usize>,
    }

    impl Communicator for Recorder<'_> {
        fn rank(&self) -> usize {
            self.inner.rank()
        }
        fn world_size(&self) -> usize {
            self.inner.world_size()
        }
        fn all_reduce_sum(&mut self, t: &mut Tensor) -> std::result::Result<(), CommError> {
            self.inner.all_reduce_sum(t)
        }
        fn all_gather(&mut self, i: &Tensor, o: &mut Tensor) -> std::result::Result<(), CommError> {
            self.gathers.push(o.size_in_bytes());
            self.inner.all_gather(i, o)
        }
        fn reduce_scatter_sum(
            &mut self,
            i: &Tensor,
            o: &mut Tensor,
        ) -> std::result::Result<(), CommError> {
            self.inner.reduce_scatter_sum(i, o)
        }
        fn broadcast(&mut self, t: &mut Tensor, root: usize) -> std::result::Result<(), CommError> {
            self.inner.broadcast(t, root)
        }
        fn barrier(&mut self) -> std::result::Result<(), CommError> {
            self.inner.barrier()
        }
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn tp_save_is_byte_identical_to_a_single_process_save() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("tokenizer.json"), b"{\"t\": 1}").unwrap();
        // tp=4 over 2 KV heads replicates them: only the owners' copies may be written.
        for (heads, kv, tp) in [(4, 2, 2), (4, 2, 4), (4, 4, 4)] {
            for tied in [false, true] {
                for dtype in [DType::F32, DType::BF16] {
                    let full = model(heads, kv, tied);
                    let case = format!("heads {heads} kv {kv} tp {tp} tied {tied} {dtype:?}");
                    let one = tmp.path().join("one");
                    full.save(&one, dtype, Some(&src)).unwrap();
                    let many = tmp.path().join("many");
                    let gathers = run_ranks(tp, |mut ctx| {
                        let tm = TpModel::from_full(&full, tp, ctx.rank)?;
                        let mut rec = Recorder {
                            inner: ctx.comm.as_mut(),
                            gathers: Vec::new(),
                        };
                        let p = &tm.local.params;
                        crate::tp::load::save(&tm.plan, &mut rec, p, &many, dtype, Some(&src))?;
                        Ok(rec.gathers)
                    })
                    .unwrap();
                    assert_eq!(files(&many), files(&one), "{case}");
                    // One gather per tensor, none bigger than `tp` copies of the largest
                    // shard: the model is never assembled at once.
                    let plan = ShardPlan::new(&full.config, tp, 0).unwrap();
                    let largest = (0..tp)
                        .flat_map(|r| plan.for_rank(r).unwrap().splits())
                        .map(|(_, s, sp)| crate::tp::shard::local_shape(&s, &sp))
                        .map(|s| s.iter().product::<usize>() * 4 * tp)
                        .max()
                        .unwrap();
                    for g in &gathers {
                        assert_eq!(g.len(), full.params.tensors().len(), "{case}");
                        assert!(g.iter().all(|&b| b <= largest), "{case}: {g:?}");
                    }
                    std::fs::remove_dir_all(&one).unwrap();
                    std::fs::remove_dir_all(&many).unwrap();
                }
            }
        }
    }

    #[test]
    fn a_failed_write_fails_the_writer_and_leaves_no_rank_waiting() {
        let tmp = tempfile::tempdir().unwrap();
        let full = model(4, 2, false);
        // A file where the folder should be: rank 0 cannot create it.
        let blocked = tmp.path().join("blocked");
        std::fs::write(&blocked, b"x").unwrap();
        let results = std::sync::Mutex::new(Vec::new());
        let e = run_ranks(2, |mut ctx| {
            let tm = TpModel::from_full(&full, 2, ctx.rank)?;
            let p = &tm.local.params;
            let r =
                crate::tp::load::save(&tm.plan, ctx.comm.as_mut(), p, &blocked, DType::F32, None);
            results.lock().unwrap().push((ctx.rank, r.is_ok()));
            r
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("blocked"), "{e}");
        let mut r = results.into_inner().unwrap();
        r.sort();
        assert_eq!(r, vec![(0, false), (1, true)]);
    }
}
