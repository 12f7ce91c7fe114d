//! Token embedding: a row lookup forward, a scatter-add backward.

use runtime::{ops, Tensor};

use crate::error::Result;

/// `out[b, t] = table[ids[b, t]]`.
pub fn forward(out: &mut Tensor, ids: &Tensor, table: &Tensor) -> Result<()> {
    Ok(ops::embedding_fwd(out, ids, table)?)
}

/// `dtable[ids[b, t]] += dout[b, t]` (accumulates, so a tied LM head's gradient can share it).
pub fn backward(dtable: &mut Tensor, dout: &Tensor, ids: &Tensor) -> Result<()> {
    Ok(ops::embedding_bwd(dtable, dout, ids)?)
}
