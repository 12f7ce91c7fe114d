//! The CPU backend: rayon-parallel loops and `gemm` matmuls over host memory.

pub(crate) mod adamw;
pub(crate) mod attention;
pub(crate) mod cast;
pub(crate) mod elementwise;
pub(crate) mod f32io;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod nn;
pub(crate) mod vec;

use crate::backend::{
    AdamWParams, AdamWTensors, AttnArgs, AttnGrads, Backend, LogprobRows, MatmulDims, MatmulParams,
    RmsNormGrads,
};
use crate::{Result, Tensor};

/// The host backend (always available).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn cast(&self, out: &mut Tensor, x: &Tensor) -> Result<()> {
        cast::cast(out, x)
    }
    fn copy_rows(&self, dst: &mut Tensor, dst_row: usize, src: &Tensor) -> Result<()> {
        cast::copy_rows(dst, dst_row, src)
    }
    fn matmul(
        &self,
        out: &mut Tensor,
        a: &Tensor,
        b: &Tensor,
        dims: &MatmulDims,
        p: &MatmulParams,
    ) -> Result<()> {
        matmul::matmul(out, a, b, dims, p)
    }
    fn add(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
        elementwise::binary("add", out, a, b, |x, y| x + y)
    }
    fn mul(&self, out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
        elementwise::binary("mul", out, a, b, |x, y| x * y)
    }
    fn scale(&self, out: &mut Tensor, x: &Tensor, s: f32) -> Result<()> {
        elementwise::scale(out, x, s)
    }
    fn scale_inplace(&self, x: &mut Tensor, s: f32) -> Result<()> {
        elementwise::scale_inplace(x, s)
    }
    fn axpy(&self, y: &mut Tensor, alpha: f32, x: &Tensor) -> Result<()> {
        elementwise::axpy(y, alpha, x)
    }
    fn sum(&self, x: &Tensor) -> Result<f64> {
        elementwise::reduce("sum", x, |v| v)
    }
    fn sum_squares(&self, x: &Tensor) -> Result<f64> {
        elementwise::reduce("sum_squares", x, |v| v * v)
    }
    fn rmsnorm_fwd(
        &self,
        out: &mut Tensor,
        rstd: &mut Tensor,
        x: &Tensor,
        w: &Tensor,
        eps: f32,
    ) -> Result<()> {
        nn::rmsnorm_fwd(out, rstd, x, w, eps)
    }
    fn rmsnorm_bwd(&self, g: RmsNormGrads) -> Result<()> {
        nn::rmsnorm_bwd(g)
    }
    fn rope(
        &self,
        x: &mut Tensor,
        cos: &Tensor,
        sin: &Tensor,
        pos: &Tensor,
        inverse: bool,
    ) -> Result<()> {
        nn::rope(x, cos, sin, pos, inverse)
    }
    fn attention_fwd(
        &self,
        out: &mut Tensor,
        lse: Option<&mut Tensor>,
        a: &AttnArgs,
    ) -> Result<()> {
        attention::attention_fwd(out, lse, a)
    }
    fn attention_bwd(&self, g: AttnGrads, a: &AttnArgs) -> Result<()> {
        attention::attention_bwd(g, a)
    }
    fn kv_cache_write(&self, cache: &mut Tensor, new: &Tensor, starts: &Tensor) -> Result<()> {
        cast::kv_cache_write(cache, new, starts)
    }
    fn swiglu_fwd(&self, out: &mut Tensor, gate: &Tensor, up: &Tensor) -> Result<()> {
        nn::swiglu_fwd(out, gate, up)
    }
    fn swiglu_bwd(
        &self,
        dgate: &mut Tensor,
        dup: &mut Tensor,
        dout: &Tensor,
        gate: &Tensor,
        up: &Tensor,
    ) -> Result<()> {
        nn::swiglu_bwd(dgate, dup, dout, gate, up)
    }
    fn embedding_fwd(&self, out: &mut Tensor, ids: &Tensor, table: &Tensor) -> Result<()> {
        nn::embedding_fwd(out, ids, table)
    }
    fn embedding_bwd(&self, dtable: &mut Tensor, dout: &Tensor, ids: &Tensor) -> Result<()> {
        nn::embedding_bwd(dtable, dout, ids)
    }
    fn logprobs_fwd(&self, logp: &mut Tensor, lse: &mut Tensor, r: &LogprobRows) -> Result<()> {
        loss::logprobs_fwd(logp, lse, r)
    }
    fn logprobs_bwd(
        &self,
        dlogits: &mut Tensor,
        dlogp: Option<&Tensor>,
        scale: f32,
        lse: &Tensor,
        r: &LogprobRows,
    ) -> Result<()> {
        loss::logprobs_bwd(dlogits, dlogp, scale, lse, r)
    }
    fn softmax(&self, out: &mut Tensor, x: &Tensor, temperature: f32) -> Result<()> {
        loss::softmax(out, x, temperature)
    }
    fn adamw(&self, t: AdamWTensors, p: &AdamWParams) -> Result<()> {
        adamw::adamw(t, p)
    }
}
