//! One tensor-parallel rank's model and its training/scoring forward, loss and log-probs.

use std::path::Path;

use runtime::comm::Communicator;
use runtime::{CrossEntropyStats, DType, Tensor};

use crate::activations::Activations;
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::layers::lm_head::IGNORE;
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
        self.local.check_ids(ids, acts)
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
        self.local.forward_layers(acts, &mut CommReduce(comm))
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
