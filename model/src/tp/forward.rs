//! One tensor-parallel rank's model and its training/scoring forward, loss and log-probs.

use std::path::Path;

use runtime::comm::Communicator;
use runtime::{CrossEntropyStats, DType, Tensor};

use crate::activations::Activations;
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::layers::attention::Keys;
use crate::layers::lm_head::{self, IGNORE};
use crate::layers::{block, rmsnorm};
use crate::model::Llama;
use crate::safetensors_io::WeightFiles;
use crate::tp::load::{load_shard, slice_params};
use crate::tp::shard::ShardPlan;
use crate::tp::{vocab, CommReduce};

/// Rank `plan.rank`'s shard: a [`Llama`] of the local shape plus the plan that places it.
pub struct TpModel {
    pub plan: ShardPlan,
    pub local: Llama,
}

impl TpModel {
    /// Loads this rank's slices of a Hugging Face folder (only those bytes are copied out of
    /// the memory-mapped files), converted to `dtype`.
    pub fn load(dir: &Path, dtype: DType, tp: usize, rank: usize) -> Result<Self> {
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let plan = ShardPlan::new(&config, tp, rank)?;
        let files = WeightFiles::open(dir)?;
        let params = load_shard(&plan, &files, dtype)?;
        Self::from_plan(plan, params)
    }

    /// This rank's shard of an in-memory model.
    pub fn from_full(full: &Llama, tp: usize, rank: usize) -> Result<Self> {
        let plan = ShardPlan::new(&full.config, tp, rank)?;
        let params = slice_params(&plan, &full.params)?;
        Self::from_plan(plan, params)
    }

    fn from_plan(plan: ShardPlan, params: crate::params::LlamaParams) -> Result<Self> {
        let local = Llama::from_params(plan.local.clone(), params)?;
        Ok(TpModel { plan, local })
    }

    /// Buffers for `[B, T]` tokens, shaped for this shard (logits are `[B, T, V/tp]`).
    pub fn activations(&self, b: usize, t: usize, recompute: bool) -> Result<Activations> {
        Activations::new(&self.plan.local, b, t, recompute, &self.local.device)
    }

    pub(crate) fn check(
        &self,
        comm: &dyn Communicator,
        ids: &Tensor,
        acts: &Activations,
    ) -> Result<()> {
        if comm.world_size() != self.plan.tp || comm.rank() != self.plan.rank {
            return Err(ModelError::TensorParallel(format!(
                "communicator is rank {} of {}, the shard is rank {} of tp={}",
                comm.rank(),
                comm.world_size(),
                self.plan.rank,
                self.plan.tp
            )));
        }
        if ids.shape() != [acts.batch, acts.seq] {
            return Err(ModelError::Invalid(format!(
                "ids {:?} do not match activations for [{}, {}]",
                ids.shape(),
                acts.batch,
                acts.seq
            )));
        }
        if acts.seq > self.local.rope.max_positions() {
            return Err(ModelError::Invalid(format!(
                "sequence length {} exceeds max_position_embeddings {}",
                acts.seq,
                self.local.rope.max_positions()
            )));
        }
        Ok(())
    }

    pub(crate) fn layer_forward(
        &self,
        l: usize,
        acts: &mut Activations,
        comm: &mut dyn Communicator,
    ) -> Result<()> {
        let slot = if acts.recompute { 0 } else { l };
        let (before, after) = acts.resid.split_at_mut(l + 1);
        block::forward(
            &self.local.params.layers[l],
            &self.local.rope,
            self.plan.full.rms_norm_eps,
            &mut acts.layers[slot],
            &before[l],
            &mut after[0],
            &acts.pos,
            Keys::Own,
            &mut CommReduce(comm),
        )
    }

    /// Forward of `ids [B, T]` (full-vocabulary ids): hidden states replicated on every rank,
    /// `acts.logits` this rank's `[B, T, V/tp]` columns.
    pub fn forward(
        &self,
        ids: &Tensor,
        acts: &mut Activations,
        comm: &mut dyn Communicator,
    ) -> Result<()> {
        self.check(comm, ids, acts)?;
        let p = &self.local.params;
        vocab::embed_forward(
            &mut acts.resid[0],
            ids,
            &p.embed,
            &self.plan.vocab_range(),
            self.plan.full.vocab_size,
            comm,
        )?;
        for l in 0..self.plan.full.num_layers {
            self.layer_forward(l, acts, comm)?;
        }
        let n = self.plan.full.num_layers;
        rmsnorm::forward(
            &mut acts.lnf,
            &mut acts.lnf_rstd,
            &acts.resid[n],
            &p.norm,
            self.plan.full.rms_norm_eps,
        )?;
        lm_head::forward(&mut acts.logits, &acts.lnf, p.head())
    }

    /// Per-token log-probs `logp [B, T]` of `targets` at `temperature` from the last forward
    /// (ignored targets give 0); keeps the global log-sum-exp in `acts.lse` for the backward.
    pub fn token_logprobs(
        &self,
        acts: &mut Activations,
        targets: &Tensor,
        temperature: f32,
        logp: &mut Tensor,
        comm: &mut dyn Communicator,
    ) -> Result<()> {
        vocab::token_logprobs_fwd(
            logp,
            &mut acts.lse,
            &acts.logits,
            targets,
            temperature,
            &self.plan.vocab_range(),
            self.plan.full.vocab_size,
            comm,
        )
    }

    /// Mean next-token cross-entropy of the last forward against `targets [B, T]` (as
    /// [`Llama::loss`]); per-token losses land in `acts.losses`.
    pub fn loss(
        &self,
        acts: &mut Activations,
        targets: &Tensor,
        comm: &mut dyn Communicator,
    ) -> Result<CrossEntropyStats> {
        let mut logp = Tensor::zeros(targets.shape(), DType::F32, &self.local.device)?;
        self.token_logprobs(acts, targets, 1.0, &mut logp, comm)?;
        let lp = logp.to_f32_vec()?;
        let losses: Vec<f32> = lp.iter().map(|x| -x).collect();
        acts.losses.as_mut_slice::<f32>()?.copy_from_slice(&losses);
        let count = targets
            .to_vec::<i64>()?
            .iter()
            .filter(|&&t| t != IGNORE)
            .count();
        let total: f64 = losses.iter().map(|&x| x as f64).sum();
        Ok(CrossEntropyStats {
            mean: if count == 0 {
                0.0
            } else {
                total / count as f64
            },
            count,
        })
    }
}
