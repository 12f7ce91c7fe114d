//! Inference over the KV cache: batched prefill of prompts of different lengths, per-sequence
//! decoding (finished sequences are dropped from the batch), sampling, and per-token log-probs.

use runtime::{ops, DType, Device, Rng, SamplingParams, Tensor};

use crate::activations::{Activations, LayerActs};
use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::layers::attention::Keys;
use crate::layers::lm_head::{self, IGNORE};
use crate::layers::{block, embedding, rmsnorm};
use crate::model::Llama;
use crate::tp::{Alone, Reduce};

/// Buffers of one cached forward of `[B, T]` new tokens (reused while the shape holds).
pub struct InferBuffers {
    pub(crate) batch: usize,
    pub(crate) seq: usize,
    pub(crate) x: Tensor,
    pub(crate) y: Tensor,
    pub(crate) layer: LayerActs,
    pub(crate) last: Tensor,
    pub(crate) last_norm: Tensor,
    pub(crate) last_rstd: Tensor,
    /// `[B, V]` logits of the selected token of each row.
    pub logits: Tensor,
}

impl InferBuffers {
    pub fn new(m: &Llama, batch: usize, seq: usize) -> Result<Self> {
        let (c, d) = (&m.config, &m.device);
        let z = |s: &[usize]| Tensor::zeros(s, DType::F32, d);
        Ok(InferBuffers {
            batch,
            seq,
            x: z(&[batch, seq, c.hidden_size])?,
            y: z(&[batch, seq, c.hidden_size])?,
            layer: LayerActs::new(c, batch, seq, d)?,
            last: z(&[batch, c.hidden_size])?,
            last_norm: z(&[batch, c.hidden_size])?,
            last_rstd: z(&[batch])?,
            logits: z(&[batch, c.vocab_size])?,
        })
    }

    pub(crate) fn ensure(
        slot: &mut Option<InferBuffers>,
        m: &Llama,
        batch: usize,
        seq: usize,
    ) -> Result<()> {
        if !matches!(slot, Some(b) if b.batch == batch && b.seq == seq) {
            *slot = Some(InferBuffers::new(m, batch, seq)?);
        }
        Ok(())
    }
}

/// Settings of [`Llama::generate`].
#[derive(Clone, Debug)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    pub seed: u64,
    /// Generation of a sequence stops after it emits any of these (the id is kept).
    pub eos_token_ids: Vec<u32>,
}

impl GenerateConfig {
    pub fn greedy(max_new_tokens: usize, eos_token_ids: Vec<u32>) -> Self {
        GenerateConfig {
            max_new_tokens,
            sampling: SamplingParams::greedy(),
            seed: 0,
            eos_token_ids,
        }
    }
}

fn index_tensor(
    v: impl IntoIterator<Item = usize>,
    shape: &[usize],
    device: &Device,
) -> Result<Tensor> {
    let v: Vec<i64> = v.into_iter().map(|x| x as i64).collect();
    Ok(Tensor::from_vec(v, shape)?.to_device(device)?)
}

/// Every row non-empty and every token inside a vocabulary of `vocab`.
pub(crate) fn check_tokens<'a>(
    rows: impl IntoIterator<Item = &'a [u32]>,
    vocab: usize,
) -> Result<()> {
    for r in rows {
        if r.is_empty() {
            return Err(ModelError::Invalid("empty token sequence".into()));
        }
        if let Some(&bad) = r.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::Invalid(format!(
                "token id {bad} is outside the vocabulary (size {vocab})"
            )));
        }
    }
    Ok(())
}

/// The index tensors of a cached forward: positions `[B, T]`, cache starts and fill levels `[B]`.
pub(crate) struct CachedIndex {
    pos: Tensor,
    starts: Tensor,
    lens: Tensor,
}

impl Llama {
    /// Runs `ids [B, T]` through the model with the cache: row `b`'s tokens sit at positions
    /// `starts[b] ..` and their keys/values are written there. Leaves in `buf.logits` the
    /// `[B, V]` logits of token `pick[b]` of each row.
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        starts: &[usize],
        pick: &[usize],
        cache: &mut KvCache,
        buf: &mut InferBuffers,
    ) -> Result<()> {
        let ix = self.cached_index(
            "forward_cached",
            ids,
            starts,
            pick,
            cache,
            buf,
            &self.device,
        )?;
        embedding::forward(&mut buf.x, ids, &self.params.embed)?;
        self.cached_layers(&ix, pick, cache, buf, &mut Alone)
    }

    /// Checks a cached forward's arguments (`what` names the caller in errors) and builds its
    /// index tensors on `device`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn cached_index(
        &self,
        what: &str,
        ids: &Tensor,
        starts: &[usize],
        pick: &[usize],
        cache: &KvCache,
        buf: &InferBuffers,
        device: &Device,
    ) -> Result<CachedIndex> {
        let (b, t) = (buf.batch, buf.seq);
        if ids.shape() != [b, t] || starts.len() != b || pick.len() != b || cache.batch() != b {
            return Err(ModelError::Invalid(format!(
                "{what}: ids {:?}, {} starts, {} picks, cache batch {} for buffers [{b}, {t}]",
                ids.shape(),
                starts.len(),
                pick.len(),
                cache.batch()
            )));
        }
        let limit = cache.capacity().min(self.rope.max_positions());
        if let Some(&s) = starts.iter().find(|&&s| s + t > limit) {
            return Err(ModelError::Invalid(format!(
                "positions {s}..{} exceed the cache/context length {limit}",
                s + t
            )));
        }
        Ok(CachedIndex {
            pos: index_tensor(starts.iter().flat_map(|&s| s..s + t), &[b, t], device)?,
            starts: index_tensor(starts.iter().copied(), &[b], device)?,
            lens: index_tensor(starts.iter().map(|&s| s + t), &[b], device)?,
        })
    }

    /// The cached forward after the embedding (in `buf.x`): every layer over the cache, then
    /// the final norm and the LM head of token `pick[b]` of each row into `buf.logits`; `tp`
    /// joins a tensor-parallel rank's peers.
    pub(crate) fn cached_layers(
        &self,
        ix: &CachedIndex,
        pick: &[usize],
        cache: &mut KvCache,
        buf: &mut InferBuffers,
        tp: &mut dyn Reduce,
    ) -> Result<()> {
        let (b, t) = (buf.batch, buf.seq);
        for (l, w) in self.params.layers.iter().enumerate() {
            let keys = Keys::Cache {
                k: &mut cache.k[l],
                v: &mut cache.v[l],
                starts: &ix.starts,
                kv_lens: &ix.lens,
            };
            block::forward(
                w,
                &self.rope,
                self.config.rms_norm_eps,
                &mut buf.layer,
                &buf.x,
                &mut buf.y,
                &ix.pos,
                keys,
                tp,
            )?;
            std::mem::swap(&mut buf.x, &mut buf.y);
        }
        let rows = buf.x.reshape(&[b * t, self.config.hidden_size])?;
        for (i, &p) in pick.iter().enumerate() {
            ops::copy_rows(&mut buf.last, i, &rows.narrow(i * t + p.min(t - 1), 1)?)?;
        }
        drop(rows);
        rmsnorm::forward(
            &mut buf.last_norm,
            &mut buf.last_rstd,
            &buf.last,
            &self.params.norm,
            self.config.rms_norm_eps,
        )?;
        lm_head::forward(&mut buf.logits, &buf.last_norm, self.params.head())
    }

    /// Generates up to `cfg.max_new_tokens` tokens after each prompt; returns the new tokens
    /// of each prompt (ending with the EOS id when one was produced).
    pub fn generate(&self, prompts: &[Vec<u32>], cfg: &GenerateConfig) -> Result<Vec<Vec<u32>>> {
        check_tokens(prompts.iter().map(Vec::as_slice), self.config.vocab_size)?;
        let mut bufs = None;
        decode(
            prompts,
            cfg,
            self.rope.max_positions(),
            &self.device,
            |n, capacity| KvCache::new(&self.config, n, capacity, DType::F32, &self.device),
            |ids, starts, picks, cache, rng| {
                InferBuffers::ensure(&mut bufs, self, ids.dim(0), ids.dim(1))?;
                let buf = bufs.as_mut().expect("just allocated");
                self.forward_cached(ids, starts, picks, cache, buf)?;
                Ok(runtime::sample(&buf.logits, &cfg.sampling, rng)?)
            },
        )
    }

    /// Log-probability of each next token: `out[i] = log p(ids[i + 1] | ids[..=i])`
    /// (`ids.len() - 1` values), computed with the full (training) forward.
    pub fn token_logprobs(&self, ids: &[u32]) -> Result<Vec<f32>> {
        check_tokens([ids], self.config.vocab_size)?;
        let t = ids.len();
        let mut acts = Activations::new(&self.config, 1, t, true, &self.device)?;
        let ids_t = self.ids_tensor(&[ids.to_vec()])?;
        self.forward(&ids_t, &mut acts)?;
        let flat: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
        let targets = lm_head::shifted_targets(&flat, 1, t, None)?;
        let mut logp = Tensor::zeros(&[1, t], DType::F32, &self.device)?;
        ops::token_logprobs_fwd(
            &mut logp,
            &mut acts.lse,
            &acts.logits,
            &targets,
            1.0,
            Some(IGNORE),
        )?;
        let mut v = logp.to_f32_vec()?;
        v.truncate(t - 1);
        Ok(v)
    }
}

/// The decoding loop behind [`Llama::generate`] (and a tensor-parallel rank's): prefill the
/// right-padded prompts, then feed each sequence its last token until it emits an EOS id or
/// reaches `max_new_tokens`. `step(ids [B, T], starts, picks, cache, rng)` runs the cached
/// forward and samples one token per row from position `picks[b]`.
pub(crate) fn decode(
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
    max_positions: usize,
    device: &runtime::Device,
    make_cache: impl FnOnce(usize, usize) -> Result<KvCache>,
    mut step: impl FnMut(&Tensor, &[usize], &[usize], &mut KvCache, &mut Rng) -> Result<Vec<u32>>,
) -> Result<Vec<Vec<u32>>> {
    if prompts.is_empty() {
        return Ok(vec![]);
    }
    let n = prompts.len();
    let mut out = vec![Vec::new(); n];
    if cfg.max_new_tokens == 0 {
        return Ok(out);
    }
    let t_max = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let capacity = t_max + cfg.max_new_tokens;
    // The last generated token is never fed back, so it needs no position.
    if capacity - 1 > max_positions {
        return Err(ModelError::Invalid(format!(
            "prompt of {t_max} tokens + {} new tokens exceeds max_position_embeddings {max_positions}",
            cfg.max_new_tokens,
        )));
    }
    let mut cache = make_cache(n, capacity)?;
    let mut rng = Rng::new(cfg.seed);

    // Prefill, right-padded: causal attention never lets a real token see the padding,
    // and decoding overwrites the padded cache rows before anything attends them.
    let padded: Vec<i64> = prompts
        .iter()
        .flat_map(|p| {
            p.iter()
                .map(|&x| x as i64)
                .chain(std::iter::repeat_n(0, t_max - p.len()))
        })
        .collect();
    let ids = Tensor::from_vec(padded, &[n, t_max])?.to_device(device)?;
    let mut lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let picks: Vec<usize> = lens.iter().map(|&l| l - 1).collect();
    let mut next = step(&ids, &vec![0; n], &picks, &mut cache, &mut rng)?;
    let mut active: Vec<usize> = (0..n).collect();
    loop {
        // Record this step's tokens; drop sequences that are done.
        let mut keep = Vec::with_capacity(active.len());
        for (i, &seq) in active.iter().enumerate() {
            out[seq].push(next[i]);
            let done = cfg.eos_token_ids.contains(&next[i]) || out[seq].len() >= cfg.max_new_tokens;
            if !done {
                keep.push(i);
            }
        }
        if keep.is_empty() {
            return Ok(out);
        }
        if keep.len() != active.len() {
            cache.retain(&keep)?;
            active = keep.iter().map(|&i| active[i]).collect();
            lens = keep.iter().map(|&i| lens[i]).collect();
            next = keep.iter().map(|&i| next[i]).collect();
        }
        let b = active.len();
        let v: Vec<i64> = next.iter().map(|&x| x as i64).collect();
        let ids = Tensor::from_vec(v, &[b, 1])?.to_device(device)?;
        next = step(&ids, &lens, &vec![0; b], &mut cache, &mut rng)?;
        for l in lens.iter_mut() {
            *l += 1;
        }
    }
}
