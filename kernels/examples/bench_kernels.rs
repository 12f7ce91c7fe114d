//! Times every kernel on Llama-3-8B-sized shapes with CUDA events (warm-up, then the median of
//! `--reps` runs) and prints achieved GB/s next to the measured device-to-device copy ceiling,
//! and TFLOP/s for attention and the cuBLASLt GEMM. Inputs are random, never zeros.
//!
//! usage: bench_kernels [--reps N] [--quick] [--json]
//! (quick: shapes 8x smaller, for a smoke run; json: one JSON object per row instead of a table)

use half::bf16;
use kernels::cudarc::driver::{sys::CUevent_flags, CudaSlice, DevicePtr};
use kernels::{Gpu, Result};

struct Bench {
    gpu: Gpu,
    reps: usize,
    copy_gbs: f64,
    seed: u64,
    json: bool,
}

impl Bench {
    fn rand_bf16(&mut self, n: usize, a: f32) -> CudaSlice<bf16> {
        let v: Vec<bf16> = (0..n).map(|_| bf16::from_f32(self.sym(a))).collect();
        self.gpu.stream().clone_htod(&v).expect("upload")
    }
    fn rand_f32(&mut self, n: usize, a: f32) -> CudaSlice<f32> {
        let v: Vec<f32> = (0..n).map(|_| self.sym(a)).collect();
        self.gpu.stream().clone_htod(&v).expect("upload")
    }
    fn sym(&mut self, a: f32) -> f32 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        ((self.seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    }

    /// Median milliseconds of `f` over `reps` runs after three warm-ups, timed with events.
    fn time(&self, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
        for _ in 0..3 {
            f()?;
        }
        self.gpu.synchronize()?;
        let ctx = self.gpu.context();
        let ev = || {
            ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .expect("event")
        };
        let mut ms = Vec::with_capacity(self.reps);
        for _ in 0..self.reps {
            let (a, b) = (ev(), ev());
            a.record(self.gpu.stream()).expect("record");
            f()?;
            b.record(self.gpu.stream()).expect("record");
            ms.push(a.elapsed_ms(&b).expect("elapsed") as f64);
        }
        ms.sort_by(|x, y| x.partial_cmp(y).unwrap());
        Ok(ms[ms.len() / 2])
    }

    fn row_bytes(&self, name: &str, shape: &str, ms: f64, bytes: f64) {
        let gbs = bytes / ms / 1e6;
        let pct = 100.0 * gbs / self.copy_gbs;
        if self.json {
            println!(
                r#"{{"bench":"kernels","name":"{name}","shape":"{shape}","ms":{ms},"gb_per_s":{gbs},"pct_of_copy":{pct}}}"#
            );
        } else {
            println!("bench kernels | {name:<22} | {shape:<28} | {ms:>9.4} ms | {gbs:>8.1} GB/s | {pct:>5.1}% of copy");
        }
    }

    fn row_flops(&self, name: &str, shape: &str, ms: f64, flops: f64) {
        let tf = flops / ms / 1e9;
        if self.json {
            println!(
                r#"{{"bench":"kernels","name":"{name}","shape":"{shape}","ms":{ms},"tflop_per_s":{tf}}}"#
            );
        } else {
            println!("bench kernels | {name:<22} | {shape:<28} | {ms:>9.4} ms | {tf:>8.1} TFLOP/s");
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let div = if args.iter().any(|a| a == "--quick") {
        8
    } else {
        1
    };
    if let Some(why) = kernels::context::unavailable_reason() {
        println!("bench kernels: skipped, {why}");
        return Ok(());
    }
    let gpu = Gpu::new(0)?;
    println!(
        "bench kernels | device {} | arch {} | driver {:?} | nvrtc {:?}",
        gpu.context().name().unwrap_or_default(),
        gpu.arch(),
        kernels::context::driver_version()?,
        kernels::compile::nvrtc_version()?
    );
    gpu.preload()?;
    let mut b = Bench {
        gpu,
        reps,
        copy_gbs: 1.0,
        json: args.iter().any(|a| a == "--json"),
        seed: 0x2545_f491_4f6c_dd1d,
    };

    // Ceiling: a large device-to-device copy, counting bytes read plus written.
    let n = (1usize << 28) / div;
    let src = b.rand_f32(n, 1.0);
    let mut dst = b.rand_f32(n, 1.0);
    let ms = b.time(|| {
        b.gpu
            .stream()
            .memcpy_dtod(&src, &mut dst)
            .map_err(|e| kernels::KernelError::Driver {
                op: "copy",
                msg: format!("{e:?}"),
            })
    })?;
    b.copy_gbs = 8.0 * n as f64 / ms / 1e6;
    b.row_bytes("copy (ceiling)", &format!("{n} f32"), ms, 8.0 * n as f64);
    drop((src, dst));

    let tok = 8192 / div;
    let (d, ffn, vocab) = (4096usize, 14336usize, 128_256usize);
    {
        let x = b.rand_bf16(tok * d, 2.0);
        let w = b.rand_bf16(d, 1.0);
        let dy = b.rand_bf16(tok * d, 1.0);
        let mut y = b.rand_bf16(tok * d, 1.0);
        let mut dx = b.rand_bf16(tok * d, 1.0);
        let mut rstd = b.rand_f32(tok, 1.0);
        let mut dw = b.rand_f32(d, 1.0);
        let ms = b.time(|| {
            kernels::rmsnorm::rmsnorm_fwd(&b.gpu, &x, &w, &mut y, &mut rstd, tok, d, 1e-5)
        })?;
        b.row_bytes(
            "rmsnorm_fwd bf16",
            &format!("{tok}x{d}"),
            ms,
            4.0 * (tok * d) as f64,
        );
        let ms = b.time(|| {
            kernels::rmsnorm::rmsnorm_bwd(
                &b.gpu, &x, &w, &rstd, &dy, &mut dx, &mut dw, tok, d, false,
            )
        })?;
        b.row_bytes(
            "rmsnorm_bwd bf16",
            &format!("{tok}x{d}"),
            ms,
            6.0 * (tok * d) as f64,
        );

        // Any values do for timing; the tables only need the [positions, head_dim/2] shape.
        let (cos, sin) = (b.rand_f32(8192 * 64, 1.0), b.rand_f32(8192 * 64, 1.0));
        let pos: Vec<i32> = (0..tok as i32).collect();
        let pd = b.gpu.stream().clone_htod(&pos).expect("upload");
        let ms =
            b.time(|| kernels::rope::rope(&b.gpu, &mut y, &pd, &cos, &sin, tok, 32, 128, false))?;
        b.row_bytes(
            "rope bf16 (in place)",
            &format!("{tok}x32x128"),
            ms,
            4.0 * (tok * d) as f64,
        );

        let ids: Vec<i32> = (0..tok).map(|i| ((i * 7919) % vocab) as i32).collect();
        let idd = b.gpu.stream().clone_htod(&ids).expect("upload");
        let table = b.rand_bf16(vocab * d, 1.0);
        let ms = b.time(|| {
            kernels::embedding::embedding_fwd(&b.gpu, &idd, &table, &mut y, tok, vocab, d)
        })?;
        b.row_bytes(
            "embedding_fwd bf16",
            &format!("{tok}x{d}"),
            ms,
            4.0 * (tok * d) as f64,
        );
    }
    {
        let n = tok * ffn;
        let g = b.rand_bf16(n, 4.0);
        let u = b.rand_bf16(n, 2.0);
        let mut h = b.rand_bf16(n, 1.0);
        let mut dg = b.rand_bf16(n, 1.0);
        let mut du = b.rand_bf16(n, 1.0);
        let ms = b.time(|| kernels::swiglu::swiglu_fwd(&b.gpu, &g, &u, &mut h, n))?;
        b.row_bytes(
            "swiglu_fwd bf16",
            &format!("{tok}x{ffn}"),
            ms,
            6.0 * n as f64,
        );
        let ms = b.time(|| kernels::swiglu::swiglu_bwd(&b.gpu, &g, &u, &h, &mut dg, &mut du, n))?;
        b.row_bytes(
            "swiglu_bwd bf16",
            &format!("{tok}x{ffn}"),
            ms,
            10.0 * n as f64,
        );
    }
    {
        use kernels::logprobs::*;
        let rows = 2048 / div;
        let spec = LogprobSpec {
            rows,
            vocab,
            ignore_index: Some(-100),
            temperature: 1.0,
        };
        let l = b.rand_bf16(rows * vocab, 8.0);
        let mut dl = b.rand_bf16(rows * vocab, 1.0);
        let targets: Vec<i32> = (0..rows).map(|i| ((i * 31) % vocab) as i32).collect();
        let td = b.gpu.stream().clone_htod(&targets).expect("upload");
        let (mut lp, mut lse) = (b.rand_f32(rows, 1.0), b.rand_f32(rows, 1.0));
        let gr = b.rand_f32(rows, 1.0);
        let ms = b.time(|| logprobs_fwd(&b.gpu, &spec, &l, &td, &mut lp, &mut lse))?;
        b.row_bytes(
            "logprobs_fwd bf16",
            &format!("{rows}x{vocab}"),
            ms,
            2.0 * (rows * vocab) as f64,
        );
        let ms = b.time(|| logprobs_bwd(&b.gpu, &spec, &l, &td, &lse, Some(&gr), 1.0, &mut dl))?;
        b.row_bytes(
            "logprobs_bwd bf16",
            &format!("{rows}x{vocab}"),
            ms,
            4.0 * (rows * vocab) as f64,
        );

        use kernels::sampling::*;
        let p = SamplingParams {
            temperature: 0.7,
            top_k: 0,
            top_p: 0.95,
        };
        let srows = 64.min(rows);
        let u = b.rand_f32(srows, 0.5);
        let mut out = b
            .gpu
            .stream()
            .clone_htod(&vec![0i32; srows])
            .expect("upload");
        let ms = b.time(|| sample(&b.gpu, &p, &l, &u, &mut out, srows, vocab))?;
        b.row_bytes(
            "sample top-p bf16",
            &format!("{srows}x{vocab}"),
            ms,
            2.0 * (srows * vocab) as f64,
        );
    }
    {
        let n = (1usize << 28) / div;
        let x = b.rand_f32(n, 1.0);
        let mut y = b.rand_bf16(n, 1.0);
        let ms = b.time(|| kernels::cast::cast(&b.gpu, &x, &mut y, n))?;
        b.row_bytes("cast f32->bf16", &format!("{n}"), ms, 6.0 * n as f64);
        let lens = [n];
        let mut scratch = b.rand_f32(kernels::reduce::scratch_len(&lens), 1.0);
        let mut out = b.rand_f32(1, 1.0);
        let refs: [&dyn DevicePtr<f32>; 1] = [&x];
        let ms = b.time(|| kernels::reduce::global_norm(&b.gpu, &refs, &mut scratch, &mut out))?;
        b.row_bytes("global_norm f32", &format!("{n}"), ms, 4.0 * n as f64);
    }
    {
        use kernels::adamw::*;
        let n = (1usize << 26) / div;
        let mut p = b.rand_f32(n, 1.0);
        let g = b.rand_f32(n, 1.0);
        let mut m = b.rand_f32(n, 0.1);
        let mut v = b.rand_f32(n, 0.0);
        let mut copy = b.rand_bf16(n, 1.0);
        let h = AdamwHyper {
            lr: 1e-5,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            step: 10,
            grad_scale: 1.0,
        };
        let ms = b.time(|| adamw::<f32>(&b.gpu, &h, &mut p, &g, &mut m, &mut v, None, n))?;
        b.row_bytes("adamw f32", &format!("{n}"), ms, 28.0 * n as f64);
        let s = b.gpu.stream().clone();
        let t = AdamwTensor {
            param: p.device_ptr(&s).0,
            grad: g.device_ptr(&s).0,
            m: m.device_ptr(&s).0,
            v: v.device_ptr(&s).0,
            param_bf16: Some(copy.device_ptr(&s).0),
            len: n,
        };
        // SAFETY: the buffers outlive the group (all dropped at the end of this block).
        let group = unsafe { AdamwGroup::new(&b.gpu, &[t]) }?;
        let ms = b.time(|| group.step(&b.gpu, &h))?;
        b.row_bytes("adamw_multi f32+bf16", &format!("{n}"), ms, 30.0 * n as f64);
        drop(group);
        let _ = &mut copy;
    }
    {
        use kernels::attention::*;
        let t = 2048 / div;
        let a = AttnShape {
            batch: 1,
            q_len: t,
            kv_len: t,
            n_heads: 32,
            n_kv_heads: 8,
            head_dim: 128,
            q_offset: 0,
            scale: 128f32.powf(-0.5),
        };
        let q = b.rand_bf16(t * 32 * 128, 1.0);
        let k = b.rand_bf16(t * 8 * 128, 1.0);
        let v = b.rand_bf16(t * 8 * 128, 1.0);
        let mut o = b.rand_bf16(t * 32 * 128, 1.0);
        let mut lse = b.rand_f32(32 * t, 1.0);
        let flops = 4.0 * 32.0 * (t * t) as f64 / 2.0 * 128.0;
        let ms =
            b.time(|| attention_fwd(&b.gpu, &a, &q, &k, &v, None, None, &mut o, Some(&mut lse)))?;
        b.row_flops(
            "attention_fwd bf16",
            &format!("1x{t}x32/8x128 causal"),
            ms,
            flops,
        );
    }
    {
        use kernels::gemm::*;
        let gemm = Gemm::new(&b.gpu)?;
        for (m, n, k) in [
            (8192 / div, 8192, 8192),
            (8192 / div, 4096, 4096),
            (8192 / div, 14336, 4096),
        ] {
            let a = b.rand_bf16(m * k, 1.0);
            let bb = b.rand_bf16(k * n, 1.0);
            let mut c = b.rand_bf16(m * n, 1.0);
            let spec = GemmSpec::single(m, n, k, false, true, 1.0, 0.0);
            let ms = b.time(|| gemm.matmul(&spec, &a, &bb, &mut c))?;
            b.row_flops(
                "cublaslt gemm bf16",
                &format!("{m}x{n}x{k} (B^T)"),
                ms,
                2.0 * (m * n * k) as f64,
            );
        }
    }
    Ok(())
}
