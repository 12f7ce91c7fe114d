//! The model's parameters under their Hugging Face names. The same struct holds gradients
//! (and optimizer moments), so everything that walks parameters walks them in one order.

use runtime::{DType, Device, Rng, Tensor};

use crate::config::LlamaConfig;
use crate::error::Result;
use crate::safetensors_io::WeightFiles;

/// One decoder layer's weights (`[out, in]` like `nn.Linear`).
#[derive(Clone, Debug)]
pub struct LayerParams {
    pub input_norm: Tensor,
    pub wq: Tensor,
    pub wk: Tensor,
    pub wv: Tensor,
    pub wo: Tensor,
    pub post_attn_norm: Tensor,
    pub w_gate: Tensor,
    pub w_up: Tensor,
    pub w_down: Tensor,
}

/// All parameters. `lm_head` is `None` when the embedding is tied. `Clone` shares the
/// tensors' storage (cheap views); use [`LlamaParams::copy`] for an independent copy.
#[derive(Clone, Debug)]
pub struct LlamaParams {
    pub embed: Tensor,
    pub layers: Vec<LayerParams>,
    pub norm: Tensor,
    pub lm_head: Option<Tensor>,
}

/// Every parameter's HF name and shape, in the canonical order.
pub fn param_shapes(c: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let (h, f) = (c.hidden_size, c.intermediate_size);
    let (qd, kvd) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let mut v = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![c.vocab_size, h],
    )];
    for i in 0..c.num_layers {
        let p = format!("model.layers.{i}");
        v.extend([
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.self_attn.q_proj.weight"), vec![qd, h]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kvd, h]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kvd, h]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, qd]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
            (format!("{p}.mlp.gate_proj.weight"), vec![f, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![f, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, f]),
        ]);
    }
    v.push(("model.norm.weight".to_string(), vec![h]));
    if !c.tie_word_embeddings {
        v.push(("lm_head.weight".to_string(), vec![c.vocab_size, h]));
    }
    v
}

impl LlamaParams {
    /// Builds the struct from tensors produced in [`param_shapes`] order.
    pub(crate) fn from_ordered(
        c: &LlamaConfig,
        mut make: impl FnMut(&str, &[usize]) -> Result<Tensor>,
    ) -> Result<Self> {
        let shapes = param_shapes(c);
        let mut it = shapes.iter();
        let mut next = || {
            let (n, s) = it.next().expect("param_shapes covers every parameter");
            make(n, s)
        };
        let embed = next()?;
        let mut layers = Vec::with_capacity(c.num_layers);
        for _ in 0..c.num_layers {
            layers.push(LayerParams {
                input_norm: next()?,
                wq: next()?,
                wk: next()?,
                wv: next()?,
                wo: next()?,
                post_attn_norm: next()?,
                w_gate: next()?,
                w_up: next()?,
                w_down: next()?,
            });
        }
        let norm = next()?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(next()?)
        };
        Ok(LlamaParams {
            embed,
            layers,
            norm,
            lm_head,
        })
    }

    /// Loads every parameter from the weight files, converted to `dtype`.
    pub fn load(c: &LlamaConfig, files: &WeightFiles, dtype: DType) -> Result<Self> {
        Self::from_ordered(c, |n, s| files.load(n, s, dtype))
    }

    /// Zero tensors shaped like the parameters (gradients, optimizer moments).
    pub fn zeros(c: &LlamaConfig, dtype: DType, device: &Device) -> Result<Self> {
        Self::from_ordered(c, |_, s| Ok(Tensor::zeros(s, dtype, device)?))
    }

    /// Random weights: norms 1, matrices N(0, std^2), drawn in canonical order from `seed`.
    pub fn random(c: &LlamaConfig, dtype: DType, std: f64, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        Self::from_ordered(c, |_, s| {
            let mut t = Tensor::zeros(s, DType::F32, &Device::Cpu)?;
            if s.len() == 1 {
                t.fill(1.0)?;
            } else {
                runtime::fill_normal(&mut t, 0.0, std, &mut rng)?;
            }
            Ok(if dtype == DType::F32 {
                t
            } else {
                t.cast(dtype)?
            })
        })
    }

    /// The LM head matrix: `lm_head` or, when tied, the embedding.
    pub fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// (name, tensor) in canonical order.
    pub fn named(&self, c: &LlamaConfig) -> Vec<(String, &Tensor)> {
        let names = param_shapes(c).into_iter().map(|(n, _)| n);
        names.zip(self.tensors()).collect()
    }

    /// Every tensor in canonical order.
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut v = vec![&self.embed];
        for l in &self.layers {
            v.extend([
                &l.input_norm,
                &l.wq,
                &l.wk,
                &l.wv,
                &l.wo,
                &l.post_attn_norm,
                &l.w_gate,
                &l.w_up,
                &l.w_down,
            ]);
        }
        v.push(&self.norm);
        v.extend(self.lm_head.as_ref());
        v
    }

    /// Every tensor mutably, in canonical order.
    pub fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v = vec![&mut self.embed];
        for l in &mut self.layers {
            v.extend([
                &mut l.input_norm,
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.post_attn_norm,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ]);
        }
        v.push(&mut self.norm);
        v.extend(self.lm_head.as_mut());
        v
    }

    /// A deep copy with its own storage (`clone` shares storage, and shared tensors cannot
    /// be written, e.g. by the optimizer).
    pub fn copy(&self) -> Result<Self> {
        let mut p = self.clone();
        for t in p.tensors_mut() {
            *t = t.copy()?;
        }
        Ok(p)
    }

    /// A copy with every tensor on `device`: the one way weights reach a GPU (the model's
    /// device is then the embedding's, see [`crate::Llama::from_params`]).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mut p = self.clone();
        for t in p.tensors_mut() {
            *t = t.to_device(device)?;
        }
        Ok(p)
    }

    /// Sets every tensor to zero (e.g. gradients before accumulation).
    pub fn zero(&mut self) -> Result<()> {
        for t in self.tensors_mut() {
            t.zero()?;
        }
        Ok(())
    }
}
