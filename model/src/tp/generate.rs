//! Tensor-parallel generation: the cached forward over this rank's KV heads, and sampling from
//! the last position's logits, all-gathered (`[B, V]`, small) so every rank draws the same
//! tokens from the same seeded RNG.

use runtime::comm::Communicator;
use runtime::{ops, DType, Device, Tensor};

use crate::error::{ModelError, Result};
use crate::generate::{decode, GenerateConfig, InferBuffers};
use crate::kv_cache::KvCache;
use crate::layers::attention::Keys;
use crate::layers::{block, lm_head, rmsnorm};
use crate::tp::{vocab, CommReduce, TpModel};

fn index_tensor(v: impl IntoIterator<Item = usize>, shape: &[usize]) -> Result<Tensor> {
    let v: Vec<i64> = v.into_iter().map(|x| x as i64).collect();
    Ok(Tensor::from_vec(v, shape)?)
}

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
        let (b, t) = (buf.batch, buf.seq);
        let c = &self.plan.full;
        if ids.shape() != [b, t] || starts.len() != b || pick.len() != b || cache.batch() != b {
            return Err(ModelError::Invalid(format!(
                "tp forward_cached: ids {:?}, {} starts, {} picks, cache batch {} for buffers [{b}, {t}]",
                ids.shape(),
                starts.len(),
                pick.len(),
                cache.batch()
            )));
        }
        let limit = cache.capacity().min(self.local.rope.max_positions());
        if let Some(&s) = starts.iter().find(|&&s| s + t > limit) {
            return Err(ModelError::Invalid(format!(
                "positions {s}..{} exceed the cache/context length {limit}",
                s + t
            )));
        }
        let pos = index_tensor(starts.iter().flat_map(|&s| s..s + t), &[b, t])?;
        let starts_t = index_tensor(starts.iter().copied(), &[b])?;
        let lens_t = index_tensor(starts.iter().map(|&s| s + t), &[b])?;
        let p = &self.local.params;
        let range = self.plan.vocab_range();
        vocab::embed_forward(&mut buf.x, ids, &p.embed, &range, c.vocab_size, comm)?;
        for (l, w) in p.layers.iter().enumerate() {
            let keys = Keys::Cache {
                k: &mut cache.k[l],
                v: &mut cache.v[l],
                starts: &starts_t,
                kv_lens: &lens_t,
            };
            block::forward(
                w,
                &self.local.rope,
                c.rms_norm_eps,
                &mut buf.layer,
                &buf.x,
                &mut buf.y,
                &pos,
                keys,
                &mut CommReduce(comm),
            )?;
            std::mem::swap(&mut buf.x, &mut buf.y);
        }
        let rows = buf.x.reshape(&[b * t, c.hidden_size])?;
        for (i, &q) in pick.iter().enumerate() {
            ops::copy_rows(&mut buf.last, i, &rows.narrow(i * t + q.min(t - 1), 1)?)?;
        }
        drop(rows);
        rmsnorm::forward(
            &mut buf.last_norm,
            &mut buf.last_rstd,
            &buf.last,
            &p.norm,
            c.rms_norm_eps,
        )?;
        lm_head::forward(&mut buf.logits, &buf.last_norm, p.head())?;
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
        let v = self.plan.full.vocab_size;
        for r in prompts {
            if r.is_empty() {
                return Err(ModelError::Invalid("empty token sequence".into()));
            }
            if let Some(&bad) = r.iter().find(|&&t| t as usize >= v) {
                return Err(ModelError::Invalid(format!(
                    "token id {bad} is outside the vocabulary (size {v})"
                )));
            }
        }
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
