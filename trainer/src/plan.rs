//! Memory planner: the bytes a training step and a generation run hold, computed from the
//! buffers the code allocates — parameter shapes from [`param_shapes`] (what `LlamaParams`
//! allocates), activation and backward-scratch sizes from `Activations`/`GradBuffers`
//! themselves, KV cache from `KvCache`. The optimizer (`model::optim::AdamW`) allocates its
//! two moments with `LlamaParams::zeros(F32)`, and an f32 master copy when the weights are
//! not f32: the same parameter shapes again.

use model::params::param_shapes;
use model::{Activations, GradBuffers, KvCache, LlamaConfig};
use runtime::{DType, Device};
use serde::Serialize;

/// Named model shapes (`--config NAME`).
pub fn preset(name: &str) -> Option<LlamaConfig> {
    // (hidden, layers, heads, kv heads, ffn, vocab, max positions)
    let dims = match name {
        "tiny" => (64, 2, 4, 2, 176, 2048, 512),
        // The benchmark shape of the issue (batch 4 x 256 tokens).
        "small" => (512, 8, 8, 4, 1408, 2048, 2048),
        "llama-3.2-1b" => (2048, 16, 32, 8, 8192, 128256, 131072),
        "llama-3.2-3b" => (3072, 28, 24, 8, 8192, 128256, 131072),
        "llama-3.1-8b" => (4096, 32, 32, 8, 14336, 128256, 131072),
        _ => return None,
    };
    let tied = name.starts_with("llama-3.2");
    let (h, l, nh, nkv, f, v, p) = dims;
    LlamaConfig::new(h, l, nh, nkv, f, v, p, tied).ok()
}

pub const PRESETS: &[&str] = &[
    "tiny",
    "small",
    "llama-3.2-1b",
    "llama-3.2-3b",
    "llama-3.1-8b",
];

/// What to plan for.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub batch: usize,
    pub seq: usize,
    pub recompute: bool,
    /// Dtype of the weights the forward reads (f32, or a bf16 copy of f32 master weights)
    /// and of the generation KV cache.
    pub dtype: DType,
}

/// Bytes per component; `*_peak` are the sums held at once.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MemoryPlan {
    pub dtype: &'static str,
    pub batch: usize,
    pub seq: usize,
    pub recompute: bool,
    pub parameters: usize,
    pub weights: u64,
    /// f32 master copy kept by the optimizer when the forward reads low-precision weights.
    pub master_weights: u64,
    pub gradients: u64,
    pub optimizer_state: u64,
    pub activations: u64,
    pub backward_scratch: u64,
    /// Token ids and next-token targets of the batch.
    pub inputs: u64,
    pub train_peak: u64,
    /// Keys and values for `batch` sequences of `seq` positions.
    pub kv_cache: u64,
    pub generation_peak: u64,
    pub peak: u64,
}

/// Errors of planning (a shape the model cannot allocate).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("plan: {0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] model::ModelError),
}

/// `bytes(batch, seq)` of a buffer set, from small allocations: every buffer the model keeps
/// per step is `[B, T, ..]`-shaped, so the size is `B * T * bytes(1, 1)`. That is verified on
/// a second probe; if the model ever adds a buffer that is not linear in `B * T`, the real
/// shape is allocated instead (CPU zero pages are not touched, so this costs address space
/// only).
fn linear_in_tokens(
    b: usize,
    t: usize,
    f: impl Fn(usize, usize) -> model::Result<usize>,
) -> Result<u64, PlanError> {
    let unit = f(1, 1)? as u64;
    if f(2, 3)? as u64 == 6 * unit && f(3, 5)? as u64 == 15 * unit {
        Ok(unit * (b * t) as u64)
    } else {
        Ok(f(b, t)? as u64)
    }
}

pub fn plan(c: &LlamaConfig, req: &PlanRequest) -> Result<MemoryPlan, PlanError> {
    let (b, t) = (req.batch, req.seq);
    if b == 0 || t == 0 {
        return Err(PlanError::Invalid(format!(
            "batch ({b}) and sequence length ({t}) must be positive"
        )));
    }
    if !req.dtype.is_float() {
        return Err(PlanError::Invalid(format!(
            "weights must be a float dtype, not {}",
            req.dtype.name()
        )));
    }
    let cpu = Device::Cpu;
    let n: usize = param_shapes(c)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let f32_bytes = DType::F32.size_in_bytes() as u64;
    let weights = n as u64 * req.dtype.size_in_bytes() as u64;
    let master_weights = if req.dtype == DType::F32 {
        0
    } else {
        n as u64 * f32_bytes
    };
    // The model's gradients are F32 (`Llama::zero_grads`).
    let gradients = n as u64 * f32_bytes;
    let optimizer_state = 2 * n as u64 * f32_bytes;
    let activations = linear_in_tokens(b, t, |b, t| {
        Ok(Activations::new(c, b, t, req.recompute, &cpu)?.bytes())
    })?;
    let backward_scratch =
        linear_in_tokens(b, t, |b, t| Ok(GradBuffers::new(c, b, t, &cpu)?.bytes()))?;
    let inputs = 2 * (b * t * DType::I64.size_in_bytes()) as u64;
    let train_peak = weights
        + master_weights
        + gradients
        + optimizer_state
        + activations
        + backward_scratch
        + inputs;
    let kv_cache = linear_in_tokens(b, t, |b, t| {
        Ok(KvCache::new(c, b, t, req.dtype, &cpu)?.bytes())
    })?;
    let generation_peak = weights + kv_cache;
    Ok(MemoryPlan {
        dtype: req.dtype.name(),
        batch: b,
        seq: t,
        recompute: req.recompute,
        parameters: n,
        weights,
        master_weights,
        gradients,
        optimizer_state,
        activations,
        backward_scratch,
        inputs,
        train_peak,
        kv_cache,
        generation_peak,
        peak: train_peak.max(generation_peak),
    })
}

/// `1.23 GiB`-style sizes for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.2} {}", UNITS[u])
    }
}

/// A table with one column per plan (dtype).
pub fn render_table(plans: &[MemoryPlan]) -> String {
    type Row = (&'static str, fn(&MemoryPlan) -> u64);
    let rows: [Row; 11] = [
        ("weights", |p| p.weights),
        ("master weights (f32)", |p| p.master_weights),
        ("gradients (f32)", |p| p.gradients),
        ("optimizer state", |p| p.optimizer_state),
        ("activations", |p| p.activations),
        ("backward scratch", |p| p.backward_scratch),
        ("inputs", |p| p.inputs),
        ("train peak", |p| p.train_peak),
        ("KV cache (generation)", |p| p.kv_cache),
        ("generation peak", |p| p.generation_peak),
        ("peak", |p| p.peak),
    ];
    let mut s = format!("{:<24}", "");
    for p in plans {
        s += &format!("{:>14}", p.dtype);
    }
    s.push('\n');
    for (name, get) in rows {
        s += &format!("{name:<24}");
        for p in plans {
            s += &format!("{:>14}", human_bytes(get(p)));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_matches_a_full_allocation() {
        let c = preset("tiny").unwrap();
        let req = PlanRequest {
            batch: 3,
            seq: 40,
            recompute: false,
            dtype: DType::F32,
        };
        let p = plan(&c, &req).unwrap();
        let acts = Activations::new(&c, 3, 40, false, &Device::Cpu).unwrap();
        assert_eq!(p.activations, acts.bytes() as u64);
        let g = GradBuffers::new(&c, 3, 40, &Device::Cpu).unwrap();
        assert_eq!(p.backward_scratch, g.bytes() as u64);
        let kv = KvCache::new(&c, 3, 40, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(p.kv_cache, kv.bytes() as u64);
        assert_eq!(p.parameters, c.num_params());
    }

    #[test]
    fn recompute_and_bf16_shrink_what_they_should() {
        let c = preset("small").unwrap();
        let mk = |recompute, dtype| {
            plan(
                &c,
                &PlanRequest {
                    batch: 4,
                    seq: 256,
                    recompute,
                    dtype,
                },
            )
            .unwrap()
        };
        let (full, rec, bf) = (
            mk(false, DType::F32),
            mk(true, DType::F32),
            mk(false, DType::BF16),
        );
        assert!(rec.activations < full.activations / 3);
        assert_eq!(bf.weights * 2, full.weights);
        assert_eq!(bf.master_weights, full.weights);
        assert_eq!(bf.kv_cache * 2, full.kv_cache);
        assert_eq!(full.gradients, bf.gradients);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.00 MiB");
    }
}
