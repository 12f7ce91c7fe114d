//! Tensor-parallel generation: the cached forward over this rank's KV heads, and sampling from
//! the last position's logits, all-gathered (`[B, V]`, small) so every rank draws the same
//! tokens from the same seeded RNG.

use runtime::comm::Communicator;
use runtime::{DType, Device, Tensor};

use crate::error::Result;
use crate::generate::{check_tokens, decode, GenerateConfig, InferBuffers};
use crate::kv_cache::KvCache;
use crate::tp::{vocab, CommReduce, TpModel};

impl TpModel {
    /// A KV cache for this rank's KV heads.
    pub fn kv_cache(&self, batch: usize, capacity: usize) -> Result<KvCache> {
        KvCache::new(
            &self.plan.local,
            batch,
            capacity,
            DType::F32,
            &self.local.device,
        )
    }

    /// Buffers of one cached forward of `[B, T]` tokens on this shard.
    pub fn infer_buffers(&self, batch: usize, seq: usize) -> Result<InferBuffers> {
        InferBuffers::new(&self.local, batch, seq)
    }

    /// As [`Llama::forward_cached`](crate::Llama::forward_cached) on this rank's shard; returns
    /// the full `[B, V]` logits of token `pick[b]` of each row (identical on every rank).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        starts: &[usize],
        pick: &[usize],
        cache: &mut KvCache,
        buf: &mut InferBuffers,
        comm: &mut dyn Communicator,
    ) -> Result<Tensor> {
        let what = "tp forward_cached";
        let ix = self
            .local
            .cached_index(what, ids, starts, pick, cache, buf, &Device::Cpu)?;
        let (b, c) = (buf.batch, &self.plan.full);
        let p = &self.local.params;
        let range = self.plan.vocab_range();
        vocab::embed_forward(&mut buf.x, ids, &p.embed, &range, c.vocab_size, comm)?;
        self.local
            .cached_layers(&ix, pick, cache, buf, &mut CommReduce(comm))?;
        // [tp, B, V/tp] -> [B, V]: rank r's block is vocabulary range r.
        let (tp, vl) = (self.plan.tp, self.plan.local.vocab_size);
        let mut all = Tensor::zeros(&[tp * b * vl], DType::F32, &Device::Cpu)?;
        comm.all_gather(&buf.logits, &mut all)?;
        let all = all.to_f32_vec()?;
        let mut out = vec![0f32; b * c.vocab_size];
        for (r, block) in all.chunks_exact(b * vl).enumerate() {
            for (i, row) in block.chunks_exact(vl).enumerate() {
                out[i * c.vocab_size + r * vl..][..vl].copy_from_slice(row);
            }
        }
        Ok(Tensor::from_vec(out, &[b, c.vocab_size])?)
    }

    /// As [`Llama::generate`](crate::Llama::generate): every rank calls it with the same
    /// prompts and settings and gets the same tokens.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
        comm: &mut dyn Communicator,
    ) -> Result<Vec<Vec<u32>>> {
        check_tokens(prompts.iter().map(Vec::as_slice), self.plan.full.vocab_size)?;
        let mut bufs = None;
        decode(
            prompts,
            cfg,
            self.local.rope.max_positions(),
            &self.local.device,
            |n, capacity| self.kv_cache(n, capacity),
            |ids, starts, picks, cache, rng| {
                InferBuffers::ensure(&mut bufs, &self.local, ids.dim(0), ids.dim(1))?;
                let buf = bufs.as_mut().expect("just allocated");
                let logits = self.forward_cached(ids, starts, picks, cache, buf, comm)?;
                Ok(runtime::sample(&logits, &cfg.sampling, rng)?)
            },
        )
    }
}
