//! Which slice of which parameter a tensor-parallel rank owns, and the local config its shard
//! runs with.

use std::ops::Range;

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::params::param_shapes;

/// How the KV heads are laid out over the ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvLayout {
    /// `num_kv_heads % tp == 0`: each rank owns `num_kv_heads / tp` of them.
    Split,
    /// `tp % num_kv_heads == 0`: each KV head is copied on `copies` consecutive ranks.
    Replicated { copies: usize },
}

/// A rank's part of one parameter (HF layout `[out, in]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// The whole tensor, identical on every rank (norm weights).
    Replicated,
    /// Rows `range` of dim 0 (column-parallel layers, vocabulary ranges).
    Rows(Range<usize>),
    /// Columns `range` of dim 1 (row-parallel layers).
    Cols(Range<usize>),
}

/// The sharding of one model over `tp` ranks, seen from `rank`.
#[derive(Clone, Debug)]
pub struct ShardPlan {
    pub tp: usize,
    pub rank: usize,
    pub full: LlamaConfig,
    /// The shape of this rank's shard: what its activations and buffers are built from.
    pub local: LlamaConfig,
    pub kv: KvLayout,
}

fn tp_err(msg: String) -> ModelError {
    ModelError::TensorParallel(msg)
}

impl ShardPlan {
    /// Checks that `full` splits over `tp` ranks; every error names the sizes involved.
    pub fn new(full: &LlamaConfig, tp: usize, rank: usize) -> Result<Self> {
        if tp == 0 || rank >= tp {
            return Err(tp_err(format!("rank {rank} of tp={tp} is not a rank")));
        }
        let (h, k) = (full.num_heads, full.num_kv_heads);
        if !h.is_multiple_of(tp) {
            return Err(tp_err(format!(
                "num_attention_heads {h} is not divisible by tp={tp}"
            )));
        }
        let kv = if k.is_multiple_of(tp) {
            KvLayout::Split
        } else if tp.is_multiple_of(k) {
            KvLayout::Replicated { copies: tp / k }
        } else {
            return Err(tp_err(format!(
                "num_key_value_heads {k} is neither divisible by tp={tp} (split KV heads) \
                 nor a divisor of it (replicated KV heads)"
            )));
        };
        if !full.intermediate_size.is_multiple_of(tp) {
            return Err(tp_err(format!(
                "intermediate_size {} is not divisible by tp={tp}",
                full.intermediate_size
            )));
        }
        if !full.vocab_size.is_multiple_of(tp) {
            return Err(tp_err(format!(
                "vocab_size {} is not divisible by tp={tp} (the vocabulary is not padded)",
                full.vocab_size
            )));
        }
        let mut local = full.clone();
        local.num_heads = h / tp;
        local.num_kv_heads = match kv {
            KvLayout::Split => k / tp,
            KvLayout::Replicated { .. } => 1,
        };
        local.intermediate_size = full.intermediate_size / tp;
        local.vocab_size = full.vocab_size / tp;
        Ok(ShardPlan {
            tp,
            rank,
            full: full.clone(),
            local,
            kv,
        })
    }

    /// The plan of another rank of the same group.
    pub fn for_rank(&self, rank: usize) -> Result<Self> {
        Self::new(&self.full, self.tp, rank)
    }

    /// This rank's vocabulary ids.
    pub fn vocab_range(&self) -> Range<usize> {
        let n = self.local.vocab_size;
        self.rank * n..(self.rank + 1) * n
    }

    /// The first (full-model) KV head this rank holds.
    pub fn first_kv_head(&self) -> usize {
        match self.kv {
            KvLayout::Split => self.rank * self.local.num_kv_heads,
            KvLayout::Replicated { copies } => self.rank / copies,
        }
    }

    /// Whether this rank is the first holder of its KV heads (the copy a full-model save takes).
    pub fn kv_owner(&self) -> bool {
        match self.kv {
            KvLayout::Split => true,
            KvLayout::Replicated { copies } => self.rank.is_multiple_of(copies),
        }
    }

    /// Every parameter's HF name, full shape and this rank's split, in canonical order.
    pub fn splits(&self) -> Vec<(String, Vec<usize>, Split)> {
        let c = &self.local;
        let d = c.head_dim;
        let at = |n: usize| self.rank * n..(self.rank + 1) * n;
        let kv0 = self.first_kv_head() * d;
        param_shapes(&self.full)
            .into_iter()
            .map(|(name, shape)| {
                let leaf = name.rsplit('.').nth(1).unwrap_or("");
                let split = match leaf {
                    "embed_tokens" | "lm_head" => Split::Rows(self.vocab_range()),
                    "q_proj" => Split::Rows(at(c.num_heads * d)),
                    "k_proj" | "v_proj" => Split::Rows(kv0..kv0 + c.num_kv_heads * d),
                    "o_proj" => Split::Cols(at(c.num_heads * d)),
                    "gate_proj" | "up_proj" => Split::Rows(at(c.intermediate_size)),
                    "down_proj" => Split::Cols(at(c.intermediate_size)),
                    _ => Split::Replicated,
                };
                (name, shape, split)
            })
            .collect()
    }
}

/// The shape of `split` of a tensor of shape `full`.
pub fn local_shape(full: &[usize], split: &Split) -> Vec<usize> {
    let mut s = full.to_vec();
    match split {
        Split::Replicated => {}
        Split::Rows(r) => s[0] = r.len(),
        Split::Cols(r) => s[1] = r.len(),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::param_shapes;
    use serde_json::json;

    fn cfg(heads: usize, kv: usize) -> LlamaConfig {
        LlamaConfig::from_json(json!({
            "model_type": "llama", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1,
            "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": 8,
            "vocab_size": 64, "max_position_embeddings": 16, "rms_norm_eps": 1e-5,
        }))
        .unwrap()
    }

    #[test]
    fn local_shapes_are_the_local_configs_shapes() {
        for (heads, kv, tp) in [(4, 2, 2), (4, 2, 4), (8, 2, 8), (4, 4, 4), (4, 1, 2)] {
            let full = cfg(heads, kv);
            for rank in 0..tp {
                let p = ShardPlan::new(&full, tp, rank).unwrap();
                let want = param_shapes(&p.local);
                let got: Vec<_> = p
                    .splits()
                    .into_iter()
                    .map(|(n, s, sp)| (n, local_shape(&s, &sp)))
                    .collect();
                assert_eq!(got, want, "heads {heads} kv {kv} tp {tp} rank {rank}");
            }
        }
    }

    #[test]
    fn replicated_kv_heads_follow_the_query_heads() {
        // 8 query heads over 8 ranks, 2 KV heads: query head r reads KV head r / 4.
        let full = cfg(8, 2);
        for rank in 0..8 {
            let p = ShardPlan::new(&full, 8, rank).unwrap();
            assert_eq!(p.kv, KvLayout::Replicated { copies: 4 });
            assert_eq!(p.first_kv_head(), rank / 4);
            assert_eq!(p.kv_owner(), rank % 4 == 0);
        }
    }

    #[test]
    fn bad_degrees_are_named() {
        let e = ShardPlan::new(&cfg(4, 2), 3, 0).unwrap_err().to_string();
        assert!(
            e.contains("num_attention_heads 4") && e.contains("tp=3"),
            "{e}"
        );
        let e = ShardPlan::new(&cfg(6, 3), 2, 0).unwrap_err().to_string();
        assert!(e.contains("num_key_value_heads 3"), "{e}");
        let mut c = cfg(4, 2);
        c.intermediate_size = 50;
        let e = ShardPlan::new(&c, 4, 0).unwrap_err().to_string();
        assert!(e.contains("intermediate_size 50"), "{e}");
        let mut c = cfg(4, 2);
        c.vocab_size = 66;
        let e = ShardPlan::new(&c, 4, 0).unwrap_err().to_string();
        assert!(e.contains("vocab_size 66"), "{e}");
        assert!(ShardPlan::new(&cfg(4, 2), 2, 2).is_err());
    }
}
