//! `swerl bench kernels`: every runtime op on one device (the CUDA kernels with `--device
//! cuda`, their CPU twins with `--device cpu`) at Llama-3-8B-sized shapes, each op's time and
//! achieved GB/s or TFLOP/s next to the measured ceiling: a device-to-device copy of the same
//! dtype for memory-bound ops, and cuBLASLt called directly (no runtime in between) for GEMM.
//! `bench/torch_baseline.py` prints the same rows for PyTorch, so the two compare line by line.
//!
//! Times are the best of three batches of `--reps` back-to-back calls, each batch closed by a
//! device sync, divided by `--reps`: what a step loop sees, launch and dispatch included.

use std::time::Instant;

use anyhow::bail;
use runtime::{ops, AdamWParams, AttentionParams, DType, Device, MatmulParams, Rng, Tensor};

#[derive(clap::Args)]
pub struct KernelsArgs {
    /// `cpu` (the CPU twins) or `cuda` / `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Shapes: `full` (Llama-3-8B: 8192 tokens x 4096, ffn 14336, vocab 128256), `small`
    /// (about 1/16 of full) or `tiny` (a smoke run). Default: full on CUDA, small on CPU.
    #[arg(long)]
    pub size: Option<String>,
    /// Storage dtype of activations and weights: bf16 or f32 (optimizer state is always f32).
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Calls per timed batch.
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Sizes of one benchmark run (names as in kernels/NOTES.md).
struct Shapes {
    rows: usize,
    d: usize,
    ffn: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    seq: usize,
    vocab: usize,
    lp_rows: usize,
    adamw: usize,
    gemm: Vec<(usize, usize, usize)>,
}

fn shapes(name: &str) -> anyhow::Result<Shapes> {
    Ok(match name {
        "full" => Shapes {
            rows: 8192,
            d: 4096,
            ffn: 14336,
            heads: 32,
            kv_heads: 8,
            head_dim: 128,
            seq: 2048,
            vocab: 128256,
            lp_rows: 2048,
            adamw: 1 << 26,
            gemm: vec![(8192, 8192, 8192), (8192, 4096, 4096), (8192, 14336, 4096)],
        },
        "small" => Shapes {
            rows: 1024,
            d: 1024,
            ffn: 3584,
            heads: 16,
            kv_heads: 4,
            head_dim: 64,
            seq: 512,
            vocab: 32000,
            lp_rows: 256,
            adamw: 1 << 22,
            gemm: vec![(1024, 1024, 1024), (1024, 3584, 1024)],
        },
        "tiny" => Shapes {
            rows: 16,
            d: 64,
            ffn: 176,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            seq: 16,
            vocab: 512,
            lp_rows: 8,
            adamw: 4096,
            gemm: vec![(16, 64, 64)],
        },
        other => bail!("unknown --size `{other}` (full, small, tiny)"),
    })
}

fn parse_device(s: &str) -> anyhow::Result<Device> {
    let ordinal = match s {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => i,
            _ => bail!("unknown --device `{s}` (cpu, cuda, cuda:N)"),
        },
    };
    cuda_device(ordinal)
}

#[cfg(feature = "cuda")]
fn cuda_device(i: usize) -> anyhow::Result<Device> {
    Ok(Device::Cuda(i))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_: usize) -> anyhow::Result<Device> {
    bail!("this swerl build has no CUDA backend (build with --features cuda)")
}

/// Blocks until the device's queued work is done (CPU ops are synchronous).
fn sync(dev: &Device) -> anyhow::Result<()> {
    match dev {
        Device::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => Ok(runtime::cuda::device(*i)?.gpu.synchronize()?),
        #[allow(unreachable_patterns)]
        other => bail!("no backend for {other:?} in this build"),
    }
}

/// Opens the device, or says in one line why it cannot be used.
fn open(dev: &Device) -> anyhow::Result<String> {
    match dev {
        Device::Cpu => Ok(format!("cpu, {} threads", rayon::current_num_threads())),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => {
            let d = runtime::cuda::device(*i)?;
            d.gpu.preload()?;
            Ok(format!(
                "cuda:{i} {} ({})",
                d.gpu.context().name().unwrap_or_default(),
                d.gpu.arch()
            ))
        }
        #[allow(unreachable_patterns)]
        _ => bail!("this swerl build has no CUDA backend (build with --features cuda)"),
    }
}

struct Bench {
    dev: Device,
    reps: usize,
    json: bool,
    rng: Rng,
    /// Copy rate (read + write bytes per second) of this device, the memory-bound ceiling.
    copy_bps: f64,
}

impl Bench {
    /// Uniform in [-a, a), made on the host then moved to the device.
    fn rand(&mut self, shape: &[usize], dtype: DType, a: f64) -> anyhow::Result<Tensor> {
        let mut t = Tensor::zeros(shape, DType::F32, &Device::Cpu)?;
        runtime::fill_uniform(&mut t, -a, a, &mut self.rng)?;
        let t = if dtype == DType::F32 {
            t
        } else {
            t.cast(dtype)?
        };
        Ok(t.to_device(&self.dev)?)
    }

    fn ids(&mut self, n: usize, below: usize, shape: &[usize]) -> anyhow::Result<Tensor> {
        let v: Vec<i64> = (0..n)
            .map(|_| self.rng.below(below as u64) as i64)
            .collect();
        Ok(Tensor::from_vec(v, shape)?.to_device(&self.dev)?)
    }

    fn zeros(&self, shape: &[usize], dtype: DType) -> anyhow::Result<Tensor> {
        Ok(Tensor::zeros(shape, dtype, &self.dev)?)
    }

    /// Seconds per call of `f`: best of three batches of `reps` calls after one warm-up.
    fn time(&self, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
        f()?;
        sync(&self.dev)?;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = Instant::now();
            for _ in 0..self.reps {
                f()?;
            }
            sync(&self.dev)?;
            best = best.min(t0.elapsed().as_secs_f64() / self.reps as f64);
        }
        Ok(best)
    }

    fn row(&self, name: &str, shape: &str, s: f64, rate: f64, unit: &str, ceiling: Option<f64>) {
        let pct = ceiling.map(|c| 100.0 * rate / c);
        if self.json {
            let v = serde_json::json!({
                "bench": "kernels", "device": format!("{:?}", self.dev), "name": name,
                "shape": shape, "ms": s * 1e3, "rate": rate, "unit": unit,
                "ceiling": ceiling, "pct_of_ceiling": pct,
            });
            println!("{v}");
        } else {
            let (c, p) = match (ceiling, pct) {
                (Some(c), Some(p)) => (format!("{c:>9.1}"), format!("{p:>5.1}%")),
                _ => (format!("{:>9}", "-"), format!("{:>6}", "-")),
            };
            println!(
                "bench kernels | {name:<20} | {shape:<26} | {:>10.4} ms | {rate:>9.3} {unit:<7} | ceiling {c} | {p}",
                s * 1e3
            );
        }
    }

    /// A memory-bound op moving `bytes` per call.
    fn mem(
        &self,
        name: &str,
        shape: &str,
        bytes: f64,
        f: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let s = self.time(f)?;
        let c = self.copy_bps / 1e9;
        self.row(name, shape, s, bytes / s / 1e9, "GB/s", Some(c));
        Ok(())
    }
}

fn dtype_of(s: &str) -> anyhow::Result<DType> {
    match s {
        "bf16" => Ok(DType::BF16),
        "f32" => Ok(DType::F32),
        other => bail!("unknown --dtype `{other}` (bf16, f32)"),
    }
}

pub fn run(a: KernelsArgs) -> anyhow::Result<()> {
    let dev = parse_device(&a.device)?;
    let size = a
        .size
        .clone()
        .unwrap_or_else(|| if dev.is_cpu() { "small" } else { "full" }.into());
    let sh = shapes(&size)?;
    let dt = dtype_of(&a.dtype)?;
    if a.reps == 0 {
        bail!("--reps must be positive");
    }
    // One line saying why, e.g. "--device cuda: ... no CUDA driver (libcuda.so not found)".
    let what = open(&dev).map_err(|e| anyhow::anyhow!("--device {}: {e:#}", a.device))?;
    let es = match dt {
        DType::F32 => 4.0,
        _ => 2.0,
    };
    let mut b = Bench {
        dev,
        reps: a.reps,
        json: a.json,
        rng: Rng::new(0x5eed),
        copy_bps: 0.0,
    };
    if !a.json {
        println!(
            "bench kernels | device {what} | size {size} | dtype {} | best of 3 x {} calls",
            a.dtype, a.reps
        );
    }

    // Ceiling: one large same-dtype copy (read + write bytes).
    let n = sh.rows * sh.ffn;
    let src = b.rand(&[n], dt, 1.0)?;
    let mut dst = b.zeros(&[n], dt)?;
    // copy_rows is a plain memcpy on both backends (cast_into converts element-wise on the CPU).
    let s = b.time(|| Ok(ops::copy_rows(&mut dst, 0, &src)?))?;
    b.copy_bps = 2.0 * es * n as f64 / s;
    let c = b.copy_bps / 1e9;
    b.row("copy (ceiling)", &format!("{n}"), s, c, "GB/s", Some(c));
    drop((src, dst));

    memory_bound(&mut b, &sh, dt, es)?;
    attention(&mut b, &sh, dt)?;
    gemm(&mut b, &sh, dt)?;
    Ok(())
}

fn memory_bound(b: &mut Bench, sh: &Shapes, dt: DType, es: f64) -> anyhow::Result<()> {
    let (r, d, f) = (sh.rows, sh.d, sh.ffn);
    let rd = format!("{r}x{d}");
    let x = b.rand(&[r, d], dt, 2.0)?;
    let w = b.rand(&[d], dt, 1.0)?;
    let dy = b.rand(&[r, d], dt, 1.0)?;
    let (mut y, mut rstd) = (b.zeros(&[r, d], dt)?, b.zeros(&[r], DType::F32)?);
    let bytes = (2 * r * d) as f64 * es;
    b.mem("rmsnorm_fwd", &rd, bytes, || {
        Ok(ops::rmsnorm_fwd(&mut y, &mut rstd, &x, &w, 1e-5)?)
    })?;
    let (mut dx, mut dw) = (b.zeros(&[r, d], dt)?, b.zeros(&[d], DType::F32)?);
    b.mem("rmsnorm_bwd", &rd, 1.5 * bytes, || {
        Ok(ops::rmsnorm_bwd(
            &mut dx, &mut dw, &dy, &x, &w, &rstd, false,
        )?)
    })?;
    drop((y, dx, dy));

    let (h, hd) = (sh.heads, sh.head_dim);
    let toks = r * d / (h * hd);
    let mut q = b.rand(&[toks, h, hd], dt, 1.0)?;
    let (cos, sin) = runtime::rope_tables(hd, 500000.0, &llama3(), sh.seq, &b.dev)?;
    let pos = b.ids(toks, sh.seq, &[toks])?;
    b.mem(
        "rope (in place)",
        &format!("{toks}x{h}x{hd}"),
        bytes,
        || Ok(ops::rope_fwd(&mut q, &cos, &sin, &pos)?),
    )?;
    drop(q);

    let table = b.rand(&[sh.vocab, d], dt, 1.0)?;
    let ids = b.ids(r, sh.vocab, &[r])?;
    let mut e = b.zeros(&[r, d], dt)?;
    b.mem("embedding_fwd", &rd, bytes, || {
        Ok(ops::embedding_fwd(&mut e, &ids, &table)?)
    })?;
    drop((table, e, x));

    let rf = format!("{r}x{f}");
    let g = b.rand(&[r, f], dt, 4.0)?;
    let u = b.rand(&[r, f], dt, 2.0)?;
    let mut hout = b.zeros(&[r, f], dt)?;
    let nf = (r * f) as f64 * es;
    b.mem("swiglu_fwd", &rf, 3.0 * nf, || {
        Ok(ops::swiglu_fwd(&mut hout, &g, &u)?)
    })?;
    let mut dg = b.zeros(&[r, f], dt)?;
    b.mem("swiglu_bwd", &rf, 5.0 * nf, || {
        Ok(ops::swiglu_bwd(&mut dg, &mut hout, &u, &g, &u)?)
    })?;
    drop((g, u, hout, dg));

    let (lr, v) = (sh.lp_rows, sh.vocab);
    let logits = b.rand(&[lr, v], dt, 8.0)?;
    let targets = b.ids(lr, v, &[lr])?;
    let (mut lp, mut lse) = (b.zeros(&[lr], DType::F32)?, b.zeros(&[lr], DType::F32)?);
    let lv = (lr * v) as f64 * es;
    let shape = format!("{lr}x{v}");
    b.mem("logprobs_fwd", &shape, lv, || {
        Ok(ops::token_logprobs_fwd(
            &mut lp, &mut lse, &logits, &targets, 1.0, None,
        )?)
    })?;
    let mut dl = b.zeros(&[lr, v], dt)?;
    let dlogp = b.rand(&[lr], DType::F32, 1.0)?;
    b.mem("logprobs_bwd", &shape, 2.0 * lv, || {
        Ok(ops::token_logprobs_bwd(
            &mut dl, &dlogp, &logits, &lse, &targets, 1.0, None,
        )?)
    })?;
    drop((logits, dl));

    let n = sh.adamw;
    let big = b.rand(&[n], DType::F32, 1.0)?;
    let mut low = b.zeros(&[n], DType::BF16)?;
    b.mem("cast f32->bf16", &format!("{n}"), 6.0 * n as f64, || {
        Ok(ops::cast_into(&mut low, &big)?)
    })?;
    b.mem("sum_squares f32", &format!("{n}"), 4.0 * n as f64, || {
        ops::sum_squares(&big)?;
        Ok(())
    })?;
    let grad = b.rand(&[n], DType::F32, 1e-3)?;
    let mut p = b.rand(&[n], DType::F32, 0.02)?;
    let (mut m, mut vv) = (b.zeros(&[n], DType::F32)?, b.zeros(&[n], DType::F32)?);
    let hp = AdamWParams::default();
    b.mem("adamw f32", &format!("{n}"), 28.0 * n as f64, || {
        Ok(ops::adamw_step(&mut p, &grad, &mut m, &mut vv, None, &hp)?)
    })?;
    b.mem(
        "adamw f32+bf16 copy",
        &format!("{n}"),
        30.0 * n as f64,
        || {
            Ok(ops::adamw_step(
                &mut p,
                &grad,
                &mut m,
                &mut vv,
                Some(&mut low),
                &hp,
            )?)
        },
    )?;
    Ok(())
}

fn llama3() -> runtime::RopeScaling {
    runtime::RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    }
}

/// Causal GQA attention, one sequence of `seq` tokens; flops count the causal half only.
fn attention(b: &mut Bench, sh: &Shapes, dt: DType) -> anyhow::Result<()> {
    let (t, h, kv, hd) = (sh.seq, sh.heads, sh.kv_heads, sh.head_dim);
    let q = b.rand(&[1, t, h, hd], dt, 1.0)?;
    let k = b.rand(&[1, t, kv, hd], dt, 1.0)?;
    let v = b.rand(&[1, t, kv, hd], dt, 1.0)?;
    let mut out = b.zeros(&[1, t, h, hd], dt)?;
    let mut lse = b.zeros(&[1, h, t], DType::F32)?;
    let p = AttentionParams::new(hd);
    let shape = format!("1x{t}x{h}/{kv}x{hd} causal");
    let flops = 2.0 * (h * t * t * hd) as f64;
    let s = b.time(|| {
        Ok(ops::attention_fwd(
            &mut out,
            Some(&mut lse),
            &q,
            &k,
            &v,
            None,
            &p,
        )?)
    })?;
    b.row(
        "attention_fwd",
        &shape,
        s,
        flops / s / 1e12,
        "TFLOP/s",
        None,
    );
    let dout = b.rand(&[1, t, h, hd], dt, 1.0)?;
    let mut dq = b.zeros(&[1, t, h, hd], dt)?;
    let (mut dk, mut dv) = (b.zeros(&[1, t, kv, hd], dt)?, b.zeros(&[1, t, kv, hd], dt)?);
    let s = b.time(|| {
        Ok(ops::attention_bwd(
            &mut dq, &mut dk, &mut dv, &dout, &q, &k, &v, &out, &lse, None, &p,
        )?)
    })?;
    b.row(
        "attention_bwd",
        &shape,
        s,
        2.5 * flops / s / 1e12,
        "TFLOP/s",
        None,
    );
    Ok(())
}

/// `x @ W^T` through the runtime, next to cuBLASLt called directly on the same shape.
fn gemm(b: &mut Bench, sh: &Shapes, dt: DType) -> anyhow::Result<()> {
    for &(m, n, k) in &sh.gemm {
        let x = b.rand(&[m, k], dt, 1.0)?;
        let w = b.rand(&[n, k], dt, 1.0)?;
        let mut out = b.zeros(&[m, n], dt)?;
        let p = MatmulParams {
            trans_b: true,
            ..Default::default()
        };
        let flops = 2.0 * (m * n * k) as f64;
        let ceiling = raw_gemm_tflops(b, &x, &w, &mut out, flops)?;
        let s = b.time(|| Ok(ops::matmul(&mut out, &x, &w, &p)?))?;
        b.row(
            "matmul x@W^T",
            &format!("{m}x{n}x{k}"),
            s,
            flops / s / 1e12,
            "TFLOP/s",
            ceiling,
        );
    }
    Ok(())
}

/// TFLOP/s of cuBLASLt's own pick for this GEMM, called straight through the kernels crate on
/// fresh buffers (prints its own row); None on the CPU, which has no reference GEMM.
#[allow(unused_variables)]
fn raw_gemm_tflops(
    b: &Bench,
    x: &Tensor,
    w: &Tensor,
    out: &mut Tensor,
    flops: f64,
) -> anyhow::Result<Option<f64>> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(i) = b.dev {
        use runtime::cuda::kernels::gemm::GemmSpec;
        let dev = runtime::cuda::device(i)?;
        let (m, k, n) = (x.dim(0), x.dim(1), w.dim(0));
        let st = dev.gpu.stream();
        let spec = GemmSpec::single(m, n, k, false, true, 1.0, 0.0);
        macro_rules! run {
            ($T:ty) => {{
                let xs = st.clone_htod(&x.to_vec::<$T>()?)?;
                let ws = st.clone_htod(&w.to_vec::<$T>()?)?;
                let mut os = st.alloc_zeros::<$T>(m * n)?;
                b.time(|| Ok(dev.gemm.matmul(&spec, &xs, &ws, &mut os)?))?
            }};
        }
        let s = match x.dtype() {
            DType::F32 => run!(f32),
            _ => run!(runtime::bf16),
        };
        let tf = flops / s / 1e12;
        let shape = format!("{m}x{n}x{k}");
        b.row("cuBLASLt (ceiling)", &shape, s, tf, "TFLOP/s", Some(tf));
        return Ok(Some(tf));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_devices_parse_and_bad_names_are_errors() {
        assert!(shapes("tiny").is_ok() && shapes("full").is_ok());
        assert!(shapes("huge").is_err_and(|e| e.to_string().contains("huge")));
        #[cfg(feature = "cuda")]
        assert_eq!(parse_device("cuda:1").unwrap(), Device::Cuda(1));
        #[cfg(not(feature = "cuda"))]
        assert!(parse_device("cuda:1").is_err_and(|e| e.to_string().contains("no CUDA")));
        assert!(parse_device("tpu").is_err());
        assert!(dtype_of("f16").is_err());
    }
}
