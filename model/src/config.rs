//! `config.json` of a Hugging Face Llama folder, in both real-world layouts: the public
//! Llama-3.x checkpoints' (top-level `rope_theta` + `rope_scaling`) and newer transformers'
//! (`rope_parameters`). Anything that would change the math and is not implemented is an error.

use std::path::Path;

use runtime::{DType, RopeScaling};
use serde_json::{json, Map, Value};

use crate::error::{io_err, ModelError, Result};

/// The settings the model needs, plus the original JSON (written back on save so that fields
/// we do not interpret survive a round trip).
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    /// Generation stops on any of these.
    pub eos_token_ids: Vec<u32>,
    /// The checkpoint's storage dtype (`torch_dtype` or `dtype`), if given.
    pub dtype: Option<DType>,
    raw: Value,
}

fn field<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    o.get(k).filter(|v| !v.is_null())
}

fn req_usize(o: &Map<String, Value>, k: &str) -> Result<usize> {
    opt_usize(o, k)?.ok_or_else(|| ModelError::Config(format!("missing `{k}`")))
}

fn opt_usize(o: &Map<String, Value>, k: &str) -> Result<Option<usize>> {
    match field(o, k) {
        None => Ok(None),
        Some(v) => v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| {
            ModelError::Config(format!("`{k}` must be a non-negative integer, got {v}"))
        }),
    }
}

fn opt_f32(o: &Map<String, Value>, k: &str) -> Result<Option<f32>> {
    match field(o, k) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|x| Some(x as f32))
            .ok_or_else(|| ModelError::Config(format!("`{k}` must be a number, got {v}"))),
    }
}

fn opt_bool(o: &Map<String, Value>, k: &str) -> Result<Option<bool>> {
    match field(o, k) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| ModelError::Config(format!("`{k}` must be true or false, got {v}"))),
    }
}

fn token_ids(o: &Map<String, Value>, k: &str) -> Result<Vec<u32>> {
    let bad = |v: &Value| {
        ModelError::Config(format!(
            "`{k}` must be a token id or a list of them, got {v}"
        ))
    };
    match field(o, k) {
        None => Ok(vec![]),
        Some(v @ Value::Array(a)) => a
            .iter()
            .map(|x| x.as_u64().map(|i| i as u32).ok_or_else(|| bad(v)))
            .collect(),
        Some(v) => v.as_u64().map(|i| vec![i as u32]).ok_or_else(|| bad(v)),
    }
}

/// Parses a `rope_scaling` / `rope_parameters` object (`rope_type` or the older `type`).
fn rope_scaling(o: &Map<String, Value>, what: &str) -> Result<RopeScaling> {
    let ty = field(o, "rope_type")
        .or_else(|| field(o, "type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match ty {
        "default" => Ok(RopeScaling::Default),
        "llama3" => {
            let need = |k: &str| -> Result<f32> {
                opt_f32(o, k)?.ok_or_else(|| {
                    ModelError::Config(format!("`{what}` of type llama3 lacks `{k}`"))
                })
            };
            Ok(RopeScaling::Llama3 {
                factor: need("factor")?,
                low_freq_factor: need("low_freq_factor")?,
                high_freq_factor: need("high_freq_factor")?,
                original_max_position_embeddings: opt_usize(o, "original_max_position_embeddings")?
                    .ok_or_else(|| {
                        ModelError::Config(format!(
                            "`{what}` of type llama3 lacks `original_max_position_embeddings`"
                        ))
                    })?,
            })
        }
        other => Err(ModelError::Unsupported(format!(
            "{what}.rope_type `{other}` (supported: default, llama3)"
        ))),
    }
}

fn dtype_of(name: &str) -> Result<DType> {
    match name {
        "float32" => Ok(DType::F32),
        "bfloat16" => Ok(DType::BF16),
        "float16" => Ok(DType::F16),
        other => Err(ModelError::Unsupported(format!(
            "dtype `{other}` (supported: float32, bfloat16, float16)"
        ))),
    }
}

/// The `torch_dtype` spelling of a float dtype.
pub fn hf_dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}

impl LlamaConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let v: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(v).map_err(|e| match e {
            ModelError::Config(m) => ModelError::Config(format!("{}: {m}", path.display())),
            ModelError::Unsupported(m) => {
                ModelError::Unsupported(format!("{}: {m}", path.display()))
            }
            e => e,
        })
    }

    /// Validates a parsed `config.json`.
    pub fn from_json(v: Value) -> Result<Self> {
        let o = v
            .as_object()
            .ok_or_else(|| ModelError::Config("config.json is not a JSON object".into()))?;
        match field(o, "model_type").and_then(Value::as_str) {
            Some("llama") => {}
            Some(other) => {
                return Err(ModelError::Unsupported(format!(
                    "model_type `{other}` (only `llama` is implemented)"
                )))
            }
            None => return Err(ModelError::Config("missing `model_type`".into())),
        }
        for flag in ["attention_bias", "mlp_bias"] {
            if opt_bool(o, flag)? == Some(true) {
                return Err(ModelError::Unsupported(format!(
                    "`{flag}: true` (Llama-3 has no biases)"
                )));
            }
        }
        if let Some(act) = field(o, "hidden_act").and_then(Value::as_str) {
            if act != "silu" {
                return Err(ModelError::Unsupported(format!(
                    "hidden_act `{act}` (only silu)"
                )));
            }
        }
        if let Some(tp) = opt_usize(o, "pretraining_tp")? {
            if tp > 1 {
                return Err(ModelError::Unsupported(format!("pretraining_tp {tp}")));
            }
        }
        let hidden_size = req_usize(o, "hidden_size")?;
        let num_heads = req_usize(o, "num_attention_heads")?;
        let num_kv_heads = opt_usize(o, "num_key_value_heads")?.unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(ModelError::Config(format!(
                "num_attention_heads {num_heads} must be a positive multiple of num_key_value_heads {num_kv_heads}"
            )));
        }
        let head_dim = opt_usize(o, "head_dim")?.unwrap_or(hidden_size / num_heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(ModelError::Config(format!(
                "head_dim {head_dim} must be even and positive"
            )));
        }
        // Newer transformers move theta and scaling into `rope_parameters`.
        let (rope_theta, scaling) = match field(o, "rope_parameters") {
            Some(Value::Object(rp)) => (
                opt_f32(rp, "rope_theta")?.or(opt_f32(o, "rope_theta")?),
                rope_scaling(rp, "rope_parameters")?,
            ),
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "`rope_parameters` must be an object, got {other}"
                )))
            }
            None => match field(o, "rope_scaling") {
                Some(Value::Object(rs)) => {
                    (opt_f32(o, "rope_theta")?, rope_scaling(rs, "rope_scaling")?)
                }
                Some(other) => {
                    return Err(ModelError::Config(format!(
                        "`rope_scaling` must be an object or null, got {other}"
                    )))
                }
                None => (opt_f32(o, "rope_theta")?, RopeScaling::Default),
            },
        };
        let dtype = match field(o, "torch_dtype").or_else(|| field(o, "dtype")) {
            Some(Value::String(s)) => Some(dtype_of(s)?),
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "`torch_dtype` must be a string, got {other}"
                )))
            }
            None => None,
        };
        let cfg = LlamaConfig {
            hidden_size,
            intermediate_size: req_usize(o, "intermediate_size")?,
            num_layers: req_usize(o, "num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: req_usize(o, "vocab_size")?,
            max_position_embeddings: opt_usize(o, "max_position_embeddings")?.unwrap_or(2048),
            rms_norm_eps: opt_f32(o, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta: rope_theta.unwrap_or(10000.0),
            rope_scaling: scaling,
            tie_word_embeddings: opt_bool(o, "tie_word_embeddings")?.unwrap_or(false),
            bos_token_id: token_ids(o, "bos_token_id")?.first().copied(),
            eos_token_ids: token_ids(o, "eos_token_id")?,
            dtype,
            raw: v.clone(),
        };
        if cfg.vocab_size == 0
            || cfg.num_layers == 0
            || cfg.hidden_size == 0
            || cfg.intermediate_size == 0
        {
            return Err(ModelError::Config(
                "vocab_size, num_hidden_layers, hidden_size and intermediate_size must be positive"
                    .into(),
            ));
        }
        Ok(cfg)
    }

    /// A config built in code (benchmarks, tests); its JSON is generated in the public
    /// Llama-3 layout.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hidden_size: usize,
        num_layers: usize,
        num_heads: usize,
        num_kv_heads: usize,
        intermediate_size: usize,
        vocab_size: usize,
        max_position_embeddings: usize,
        tie_word_embeddings: bool,
    ) -> Result<Self> {
        let v = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "num_key_value_heads": num_kv_heads,
            "intermediate_size": intermediate_size,
            "vocab_size": vocab_size,
            "max_position_embeddings": max_position_embeddings,
            "tie_word_embeddings": tie_word_embeddings,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "rope_scaling": null,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "torch_dtype": "float32",
        });
        Self::from_json(v)
    }

    /// The JSON to write as `config.json` (the original with `torch_dtype` set to `dtype`).
    pub fn to_json(&self, dtype: DType) -> Value {
        let mut v = self.raw.clone();
        if let Some(o) = v.as_object_mut() {
            let name = hf_dtype_name(dtype);
            if o.contains_key("dtype") {
                o.insert("dtype".into(), json!(name));
            } else {
                o.insert("torch_dtype".into(), json!(name));
            }
        }
        v
    }

    /// Queries per KV head (the GQA group size).
    pub fn group_size(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// Number of parameters (embedding and LM head counted once when tied).
    pub fn num_params(&self) -> usize {
        let (c, f, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let qo = 2 * c * self.num_heads * self.head_dim;
        let kv = 2 * c * self.num_kv_heads * self.head_dim;
        let layer = qo + kv + 3 * c * f + 2 * c;
        let head = if self.tie_word_embeddings { 0 } else { v * c };
        v * c + self.num_layers * layer + c + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({
            "model_type": "llama", "hidden_size": 64, "intermediate_size": 176,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 2048, "rms_norm_eps": 1e-5, "eos_token_id": 7,
            "torch_dtype": "bfloat16", "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        })
    }

    #[test]
    fn both_rope_layouts_parse_to_the_same_config() {
        let old = LlamaConfig::from_json(base()).unwrap();
        let mut new = base();
        let o = new.as_object_mut().unwrap();
        let mut rp = o.remove("rope_scaling").unwrap();
        let theta = o.remove("rope_theta").unwrap();
        rp["rope_theta"] = theta;
        o.insert("rope_parameters".into(), rp);
        let dt = o.remove("torch_dtype").unwrap();
        o.insert("dtype".into(), dt);
        o.insert("eos_token_id".into(), json!([7]));
        let new = LlamaConfig::from_json(new).unwrap();
        let strip = |c: LlamaConfig| {
            (
                c.rope_theta,
                c.rope_scaling,
                c.eos_token_ids,
                c.dtype,
                c.head_dim,
            )
        };
        assert_eq!(strip(old.clone()), strip(new));
        assert_eq!(
            old.rope_scaling,
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192
            }
        );
        assert_eq!(old.dtype, Some(DType::BF16));
        assert_eq!(old.head_dim, 16);
        assert!(!old.tie_word_embeddings);
    }

    #[test]
    fn explicit_head_dim_and_defaults() {
        let mut v = base();
        v["head_dim"] = json!(32);
        v["tie_word_embeddings"] = json!(true);
        v.as_object_mut().unwrap().remove("num_key_value_heads");
        v.as_object_mut().unwrap().remove("eos_token_id");
        let c = LlamaConfig::from_json(v).unwrap();
        assert_eq!(
            (c.head_dim, c.num_kv_heads, c.tie_word_embeddings),
            (32, 4, true)
        );
        assert!(c.eos_token_ids.is_empty());
        let mut v = base();
        v["rope_scaling"] = Value::Null;
        assert_eq!(
            LlamaConfig::from_json(v).unwrap().rope_scaling,
            RopeScaling::Default
        );
    }

    #[test]
    fn unsupported_settings_are_named() {
        let cases = [
            ("model_type", json!("mistral"), "mistral"),
            ("attention_bias", json!(true), "attention_bias"),
            ("hidden_act", json!("gelu"), "gelu"),
            (
                "rope_scaling",
                json!({"rope_type": "yarn", "factor": 4.0}),
                "yarn",
            ),
            ("torch_dtype", json!("float8"), "float8"),
        ];
        for (k, val, needle) in cases {
            let mut v = base();
            v[k] = val;
            let e = LlamaConfig::from_json(v).unwrap_err();
            assert!(matches!(e, ModelError::Unsupported(_)), "{k}: {e}");
            assert!(e.to_string().contains(needle), "{k}: {e}");
        }
        let mut v = base();
        v.as_object_mut().unwrap().remove("hidden_size");
        assert!(LlamaConfig::from_json(v)
            .unwrap_err()
            .to_string()
            .contains("hidden_size"));
        let mut v = base();
        v["num_key_value_heads"] = json!(3);
        assert!(LlamaConfig::from_json(v).is_err());
        let mut v = base();
        v["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0});
        assert!(LlamaConfig::from_json(v)
            .unwrap_err()
            .to_string()
            .contains("low_freq_factor"));
    }

    #[test]
    fn code_built_config_round_trips_through_json() {
        let c = LlamaConfig::new(512, 8, 8, 4, 1408, 2048, 1024, false).unwrap();
        let back = LlamaConfig::from_json(c.to_json(DType::F32)).unwrap();
        assert_eq!(c, back);
        assert_eq!(c.head_dim, 64);
    }
}
