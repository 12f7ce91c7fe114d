//! Reading and writing safetensors weights: one `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, memory-mapped; F32/BF16/F16 converted to the dtype asked for.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use runtime::{bf16, f16, DType, Tensor};
use safetensors::{Dtype as StDtype, SafeTensors};

use crate::error::{io_err, ModelError, Result};

/// The weight files of a model folder, mapped and validated (header, offsets, file length).
pub struct WeightFiles {
    files: Vec<(PathBuf, Mmap)>,
    /// Tensor name -> index into `files`.
    location: HashMap<String, usize>,
    /// Where a missing tensor was looked for (the file or the index), for error messages.
    described_as: PathBuf,
}

fn map_file(path: &Path) -> Result<Mmap> {
    let f = File::open(path).map_err(io_err(path))?;
    // SAFETY: the mapping is read-only; like every mmap-based loader we assume the file is not
    // truncated by another process while the model is loading.
    unsafe { Mmap::map(&f) }.map_err(io_err(path))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors {
        file: path.to_path_buf(),
        msg: format!("{e} (truncated or corrupt?)"),
    })
}

impl WeightFiles {
    /// Opens `dir/model.safetensors`, or the shards named by `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        if index.exists() {
            Self::open_index(dir, &index)
        } else if single.exists() {
            Self::open_files(std::slice::from_ref(&single), single.clone())
        } else {
            Err(ModelError::Io {
                path: single,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model.safetensors or model.safetensors.index.json in the model folder",
                ),
            })
        }
    }

    fn open_index(dir: &Path, index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(io_err(index))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: index.to_path_buf(),
                source,
            })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::Safetensors {
                file: index.to_path_buf(),
                msg: "no `weight_map` object".into(),
            })?;
        let mut shards: Vec<String> = map
            .values()
            .map(|f| {
                f.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ModelError::Safetensors {
                        file: index.to_path_buf(),
                        msg: format!("weight_map value {f} is not a file name"),
                    })
            })
            .collect::<Result<_>>()?;
        shards.sort();
        shards.dedup();
        let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
        let wf = Self::open_files(&paths, index.to_path_buf())?;
        for (name, file) in map {
            let want = dir.join(file.as_str().unwrap_or_default());
            match wf.location.get(name) {
                Some(&i) if wf.files[i].0 == want => {}
                _ => {
                    return Err(ModelError::MissingTensor {
                        name: name.clone(),
                        file: want,
                    })
                }
            }
        }
        Ok(wf)
    }

    fn open_files(paths: &[PathBuf], described_as: PathBuf) -> Result<Self> {
        let mut files = Vec::new();
        let mut location = HashMap::new();
        for (i, p) in paths.iter().enumerate() {
            let m = map_file(p)?;
            for name in parse(p, &m)?.names() {
                location.insert(name.to_string(), i);
            }
            files.push((p.clone(), m));
        }
        Ok(WeightFiles {
            files,
            location,
            described_as,
        })
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.location.keys().cloned().collect();
        v.sort();
        v
    }

    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// Loads `name`, checking its shape, converted to `dtype` (a float dtype).
    pub fn load(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let raw = self.raw(name, shape)?;
        raw.to_tensor(raw.data, shape, dtype)
    }

    /// The mapped bytes of `name` (no copy), after checking its shape: what a tensor-parallel
    /// rank slices its shard from.
    pub(crate) fn raw(&self, name: &str, shape: &[usize]) -> Result<RawTensor<'_>> {
        let &i = self
            .location
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                file: self.described_as.clone(),
            })?;
        let (path, bytes) = &self.files[i];
        let st = parse(path, bytes)?;
        let view = st.tensor(name).map_err(|e| ModelError::Safetensors {
            file: path.clone(),
            msg: e.to_string(),
        })?;
        if view.shape() != shape {
            return Err(ModelError::ShapeMismatch {
                name: name.to_string(),
                file: path.clone(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let elem = match view.dtype() {
            StDtype::F32 => 4,
            StDtype::BF16 | StDtype::F16 => 2,
            other => {
                return Err(ModelError::TensorDType {
                    name: name.to_string(),
                    file: path.clone(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok(RawTensor {
            name: name.to_string(),
            file: path,
            dtype: view.dtype(),
            elem,
            data: view.data(),
        })
    }
}

/// One float tensor's bytes inside a mapped weight file.
pub(crate) struct RawTensor<'a> {
    name: String,
    file: &'a Path,
    dtype: StDtype,
    /// Bytes per element.
    pub elem: usize,
    pub data: &'a [u8],
}

impl RawTensor<'_> {
    /// Builds a `shape` tensor from `bytes` (this tensor's dtype, e.g. a slice of
    /// `self.data`), converted to `dtype`.
    pub fn to_tensor(&self, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = match self.dtype {
            StDtype::F32 => {
                Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, f32>(bytes), shape)?
            }
            StDtype::BF16 => {
                Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, bf16>(bytes), shape)?
            }
            StDtype::F16 => {
                Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, f16>(bytes), shape)?
            }
            other => {
                return Err(ModelError::TensorDType {
                    name: self.name.clone(),
                    file: self.file.to_path_buf(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok(if t.dtype() == dtype {
            t
        } else {
            t.cast(dtype)?
        })
    }
}

/// Reads every tensor of one safetensors file (any dtype the runtime has), e.g. a reference file.
pub fn read_all(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let m = map_file(path)?;
    let st = parse(path, &m)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let (d, s) = (view.data(), view.shape());
        let t = match view.dtype() {
            StDtype::F32 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, f32>(d), s)?,
            StDtype::BF16 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, bf16>(d), s)?,
            StDtype::F16 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, f16>(d), s)?,
            StDtype::I32 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, i32>(d), s)?,
            StDtype::I64 => Tensor::from_vec(bytemuck::pod_collect_to_vec::<u8, i64>(d), s)?,
            other => {
                return Err(ModelError::TensorDType {
                    name,
                    file: path.to_path_buf(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        out.insert(name, t);
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

pub(crate) fn st_dtype(d: DType) -> StDtype {
    match d {
        DType::F32 => StDtype::F32,
        DType::BF16 => StDtype::BF16,
        DType::F16 => StDtype::F16,
        DType::I32 => StDtype::I32,
        DType::I64 => StDtype::I64,
    }
}

fn raw_bytes(t: &Tensor) -> Result<Vec<u8>> {
    Ok(match t.dtype() {
        DType::F32 => bytemuck::cast_slice(t.as_slice::<f32>()?).to_vec(),
        DType::BF16 => bytemuck::cast_slice(t.as_slice::<bf16>()?).to_vec(),
        DType::F16 => bytemuck::cast_slice(t.as_slice::<f16>()?).to_vec(),
        DType::I32 => bytemuck::cast_slice(t.as_slice::<i32>()?).to_vec(),
        DType::I64 => bytemuck::cast_slice(t.as_slice::<i64>()?).to_vec(),
    })
}

/// Writes named tensors to one safetensors file (atomically), float tensors converted to
/// `float_dtype`; the header carries `{"format": "pt"}` as transformers expects.
pub fn save(path: &Path, tensors: &[(String, &Tensor)], float_dtype: DType) -> Result<()> {
    let mut bufs = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = if t.dtype().is_float() && t.dtype() != float_dtype {
            t.cast(float_dtype)?
        } else {
            (*t).clone()
        };
        bufs.push((name.clone(), t.dtype(), t.shape().to_vec(), raw_bytes(&t)?));
    }
    let views = bufs
        .iter()
        .map(|(n, d, s, b)| {
            safetensors::tensor::TensorView::new(st_dtype(*d), s.clone(), b).map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Safetensors {
            file: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| ModelError::Safetensors {
        file: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}
