//! Rotary position embeddings (default or `llama3`-scaled frequencies), applied in place to
//! `[..., heads, head_dim]` tensors with one position per token.

use runtime::{ops, rope_tables, Device, Tensor};

use crate::config::LlamaConfig;
use crate::error::Result;

/// Precomputed `cos`/`sin` tables `[max_positions, head_dim / 2]`.
#[derive(Clone, Debug)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    pub fn new(c: &LlamaConfig, device: &Device) -> Result<Self> {
        let (cos, sin) = rope_tables(
            c.head_dim,
            c.rope_theta,
            &c.rope_scaling,
            c.max_position_embeddings,
            device,
        )?;
        Ok(Rope { cos, sin })
    }

    /// Positions the tables cover.
    pub fn max_positions(&self) -> usize {
        self.cos.dim(0)
    }

    pub fn forward(&self, x: &mut Tensor, pos: &Tensor) -> Result<()> {
        Ok(ops::rope_fwd(x, &self.cos, &self.sin, pos)?)
    }

    /// Turns the gradient of the rotated tensor into the gradient of its input, in place.
    pub fn backward(&self, dx: &mut Tensor, pos: &Tensor) -> Result<()> {
        Ok(ops::rope_bwd(dx, &self.cos, &self.sin, pos)?)
    }
}
