//! The Llama-3 model: config + parameters + RoPE tables, with the training/scoring forward
//! and the hand-written backward over preallocated [`Activations`].

use std::path::Path;

use runtime::{CrossEntropyStats, DType, Device, Tensor};

use crate::activations::{Activations, GradBuffers};
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::layers::attention::Keys;
use crate::layers::rope::Rope;
use crate::layers::{block, embedding, lm_head, rmsnorm};
use crate::params::LlamaParams;
use crate::safetensors_io::WeightFiles;
use crate::tp::{Alone, Reduce};

/// Which parameters' gradients a backward has just finished accumulating: nothing later in
/// the same backward writes them again, so a data-parallel rank may start summing them
/// across ranks while the backward continues (in order: `Head`, `Layer(n - 1)` .. `Layer(0)`,
/// `Embed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradReady {
    /// The final norm and the untied LM head (a tied head's gradient lives in the embedding's).
    Head,
    /// Every weight of decoder layer `l`.
    Layer(usize),
    /// The token embedding (including a tied LM head's share).
    Embed,
}

/// Told by a backward when a part of the gradients is final (see [`GradReady`]).
pub trait GradHook {
    fn ready(&mut self, grads: &LlamaParams, part: GradReady) -> Result<()>;
}

/// For backwards whose gradients nobody consumes early (single process, earlier micro-batches).
pub struct NoHook;

impl GradHook for NoHook {
    fn ready(&mut self, _: &LlamaParams, _: GradReady) -> Result<()> {
        Ok(())
    }
}

/// A Llama-3 causal LM.
pub struct Llama {
    pub config: LlamaConfig,
    pub params: LlamaParams,
    pub rope: Rope,
    pub device: Device,
}

impl Llama {
    /// Loads a Hugging Face folder with f32 weights.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_as(dir, DType::F32)
    }

    /// Loads a Hugging Face folder, converting the weights to `dtype`.
    pub fn load_as(dir: &Path, dtype: DType) -> Result<Self> {
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let files = WeightFiles::open(dir)?;
        let params = LlamaParams::load(&config, &files, dtype)?;
        Self::from_params(config, params)
    }

    pub fn from_params(config: LlamaConfig, params: LlamaParams) -> Result<Self> {
        let device = *params.embed.device();
        let rope = Rope::new(&config, &device)?;
        Ok(Llama {
            config,
            params,
            rope,
            device,
        })
    }

    /// Random weights (`N(0, 0.02^2)` matrices, unit norms) from `seed`.
    pub fn random(config: LlamaConfig, dtype: DType, seed: u64) -> Result<Self> {
        let params = LlamaParams::random(&config, dtype, 0.02, seed)?;
        Self::from_params(config, params)
    }

    /// Token ids `[B, T]` (I64) from rows of equal length.
    pub fn ids_tensor(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let t = rows.first().map_or(0, Vec::len);
        if rows.is_empty() || t == 0 || rows.iter().any(|r| r.len() != t) {
            return Err(ModelError::Invalid(format!(
                "need a non-empty batch of equal-length non-empty rows (lengths {:?})",
                rows.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        let flat: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
        Ok(Tensor::from_vec(flat, &[rows.len(), t])?.to_device(&self.device)?)
    }

    pub(crate) fn check_ids(&self, ids: &Tensor, acts: &Activations) -> Result<()> {
        if ids.shape() != [acts.batch, acts.seq] {
            return Err(ModelError::Invalid(format!(
                "ids {:?} do not match activations for [{}, {}]",
                ids.shape(),
                acts.batch,
                acts.seq
            )));
        }
        if acts.seq > self.rope.max_positions() {
            return Err(ModelError::Invalid(format!(
                "sequence length {} exceeds max_position_embeddings {}",
                acts.seq,
                self.rope.max_positions()
            )));
        }
        Ok(())
    }

    /// Forward of one layer `l` from `acts.resid[l]` into `acts.resid[l + 1]`; `tp` joins a
    /// tensor-parallel rank's peers ([`Alone`] for a whole model).
    pub(crate) fn layer_forward(
        &self,
        l: usize,
        acts: &mut Activations,
        tp: &mut dyn Reduce,
    ) -> Result<()> {
        let slot = if acts.recompute { 0 } else { l };
        let (before, after) = acts.resid.split_at_mut(l + 1);
        block::forward(
            &self.params.layers[l],
            &self.rope,
            self.config.rms_norm_eps,
            &mut acts.layers[slot],
            &before[l],
            &mut after[0],
            &acts.pos,
            Keys::Own,
            tp,
        )
    }

    /// Full forward of `ids [B, T]`: fills the activations, hidden states and `acts.logits`.
    pub fn forward(&self, ids: &Tensor, acts: &mut Activations) -> Result<()> {
        self.check_ids(ids, acts)?;
        embedding::forward(&mut acts.resid[0], ids, &self.params.embed)?;
        self.forward_layers(acts, &mut Alone)
    }

    /// The forward after the embedding (in `acts.resid[0]`): every layer, the final norm and
    /// the LM head (a tensor-parallel rank's shard runs it with its `tp`).
    pub(crate) fn forward_layers(&self, acts: &mut Activations, tp: &mut dyn Reduce) -> Result<()> {
        for l in 0..self.config.num_layers {
            self.layer_forward(l, acts, tp)?;
        }
        let last = &acts.resid[self.config.num_layers];
        rmsnorm::forward(
            &mut acts.lnf,
            &mut acts.lnf_rstd,
            last,
            &self.params.norm,
            self.config.rms_norm_eps,
        )?;
        lm_head::forward(&mut acts.logits, &acts.lnf, self.params.head())
    }

    /// Mean cross-entropy of the last forward's logits against `targets [B, T]`
    /// (see [`lm_head::shifted_targets`]).
    pub fn loss(&self, acts: &mut Activations, targets: &Tensor) -> Result<CrossEntropyStats> {
        lm_head::loss_forward(&mut acts.losses, &mut acts.lse, &acts.logits, targets)
    }

    /// Backward of `loss_scale * sum(token losses)` after [`Llama::forward`] and
    /// [`Llama::loss`]: **accumulates** every parameter's gradient into `grads` (F32).
    /// For the mean loss pass `loss_scale = 1 / count`; micro-batches of one big batch all
    /// pass `1 / total_count`.
    pub fn backward(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        acts: &mut Activations,
        grads: &mut LlamaParams,
        g: &mut GradBuffers,
        loss_scale: f32,
    ) -> Result<()> {
        self.backward_hooked(ids, targets, acts, grads, g, loss_scale, &mut NoHook)
    }

    /// [`Llama::backward`] telling `hook` as each part of the gradients becomes final.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_hooked(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        acts: &mut Activations,
        grads: &mut LlamaParams,
        g: &mut GradBuffers,
        loss_scale: f32,
        hook: &mut dyn GradHook,
    ) -> Result<()> {
        self.check_ids(ids, acts)?;
        lm_head::loss_backward(
            &mut g.d_logits,
            &acts.logits,
            &acts.lse,
            targets,
            loss_scale,
        )?;
        self.backward_from_dlogits_hooked(ids, acts, grads, g, hook)
    }

    /// Backward of the last [`Llama::forward`] starting from d logits already in
    /// `g.d_logits`: **accumulates** every parameter's gradient into `grads` (F32).
    /// Losses other than cross-entropy (e.g. a policy gradient through token log-probs)
    /// fill `g.d_logits` themselves and call this.
    pub fn backward_from_dlogits(
        &self,
        ids: &Tensor,
        acts: &mut Activations,
        grads: &mut LlamaParams,
        g: &mut GradBuffers,
    ) -> Result<()> {
        self.backward_from_dlogits_hooked(ids, acts, grads, g, &mut NoHook)
    }

    /// [`Llama::backward_from_dlogits`] telling `hook` as each part of the gradients becomes
    /// final.
    pub fn backward_from_dlogits_hooked(
        &self,
        ids: &Tensor,
        acts: &mut Activations,
        grads: &mut LlamaParams,
        g: &mut GradBuffers,
        hook: &mut dyn GradHook,
    ) -> Result<()> {
        self.check_ids(ids, acts)?;
        self.backward_layers(acts, grads, g, &mut Alone, hook)?;
        embedding::backward(&mut grads.embed, &g.d_resid, ids)?;
        hook.ready(grads, GradReady::Embed)
    }

    /// The backward from `g.d_logits` down to the embedding output's gradient in `g.d_resid`
    /// (the LM head, the final norm and every layer, in reverse); **accumulates** the weight
    /// gradients, telling `hook` after the head and after each layer. A tensor-parallel rank's
    /// shard runs it with its `tp`.
    pub(crate) fn backward_layers(
        &self,
        acts: &mut Activations,
        grads: &mut LlamaParams,
        g: &mut GradBuffers,
        tp: &mut dyn Reduce,
        hook: &mut dyn GradHook,
    ) -> Result<()> {
        let p = &self.params;
        let d_head = match grads.lm_head.as_mut() {
            Some(h) => h,
            None => &mut grads.embed,
        };
        lm_head::backward(&mut g.layer.d_ln, d_head, &g.d_logits, &acts.lnf, p.head())?;
        // A rank saw only its vocabulary columns: the final norm's input gradient is a sum.
        tp.all_reduce(&mut g.layer.d_ln)?;
        let n = self.config.num_layers;
        rmsnorm::backward(
            &mut g.d_resid,
            &mut grads.norm,
            &g.layer.d_ln,
            &acts.resid[n],
            &p.norm,
            &acts.lnf_rstd,
            false,
        )?;
        hook.ready(grads, GradReady::Head)?;
        for l in (0..n).rev() {
            if acts.recompute {
                self.layer_forward(l, acts, tp)?;
            }
            let slot = if acts.recompute { 0 } else { l };
            block::backward(
                &p.layers[l],
                &mut grads.layers[l],
                &self.rope,
                &acts.layers[slot],
                &acts.resid[l],
                &acts.pos,
                &g.d_resid,
                &mut g.d_resid_next,
                &mut g.layer,
                tp,
            )?;
            std::mem::swap(&mut g.d_resid, &mut g.d_resid_next);
            hook.ready(grads, GradReady::Layer(l))?;
        }
        Ok(())
    }

    /// Zeroed F32 gradients shaped like the parameters.
    pub fn zero_grads(&self) -> Result<LlamaParams> {
        LlamaParams::zeros(&self.config, DType::F32, &self.device)
    }
}
