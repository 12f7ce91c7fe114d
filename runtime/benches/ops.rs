//! Runtime benchmarks: matmul GFLOP/s (reported as Gelem/s = GFLOP/s) and memory-bound ops in
//! GB/s next to a plain memcpy of the same size. `cargo bench -p runtime [-- <filter>]`.
//!
//! With `RUNTIME_BENCH_CPU_TIME=1` the same benchmarks are timed in CPU time of the whole
//! process (sum over its threads, from /proc/self/task/*/schedstat) instead of wall time: on a
//! machine shared with other jobs this shows the work per CPU-second, which wall time cannot.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput};
use runtime::{ops, AdamWParams, AttentionParams, DType, Device, MatmulParams, Rng, Tensor};

fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
    let mut t = Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    runtime::fill_normal(&mut t, 0.0, 1.0, rng).unwrap();
    t
}

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()
}

fn matmul<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(group("matmul_f32"));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut rng = Rng::new(1);
    for n in [512usize, 1024, 2048] {
        let (a, b) = (randn(&[n, n], &mut rng), randn(&[n, n], &mut rng));
        let mut out = zeros(&[n, n]);
        g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        g.bench_with_input(BenchmarkId::new("nn", n), &n, |bch, _| {
            bch.iter(|| ops::matmul(&mut out, &a, &b, &MatmulParams::default()).unwrap())
        });
        if n == 1024 {
            // the three shapes of a linear layer: y = x W^T, dx = dy W, dW += dy^T x
            for (name, ta, tb, beta) in [("nt", false, true, 0.0), ("tn_acc", true, false, 1.0)] {
                let p = MatmulParams {
                    trans_a: ta,
                    trans_b: tb,
                    alpha: 1.0,
                    beta,
                };
                g.bench_with_input(BenchmarkId::new(name, n), &n, |bch, _| {
                    bch.iter(|| ops::matmul(&mut out, &a, &b, &p).unwrap())
                });
            }
            let (ab, bb) = (a.cast(DType::BF16).unwrap(), b.cast(DType::BF16).unwrap());
            g.bench_with_input(BenchmarkId::new("nt_bf16_inputs", n), &n, |bch, _| {
                let p = MatmulParams {
                    trans_b: true,
                    ..Default::default()
                };
                bch.iter(|| ops::matmul(&mut out, &ab, &bb, &p).unwrap())
            });
        }
    }
    // batched small matrices (attention-like): 32 x [256, 64] @ [64, 256]
    let (a, b) = (
        randn(&[32, 256, 64], &mut rng),
        randn(&[32, 256, 64], &mut rng),
    );
    let mut out = zeros(&[32, 256, 256]);
    g.throughput(Throughput::Elements(2 * 32 * 256 * 256 * 64));
    g.bench_function("batched_32x256x256x64_nt", |bch| {
        let p = MatmulParams {
            trans_b: true,
            ..Default::default()
        };
        bch.iter(|| ops::matmul(&mut out, &a, &b, &p).unwrap())
    });
    g.finish();
}

/// 8M f32 = 32 MB per tensor: well past the caches.
const N: usize = 8 << 20;

fn memory_bound<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(group("memory_bound"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut rng = Rng::new(2);
    let (a, b) = (randn(&[N], &mut rng), randn(&[N], &mut rng));
    let mut out = zeros(&[N]);
    let bytes = |tensors: usize| Throughput::BytesDecimal((tensors * N * 4) as u64);

    let src = a.to_f32_vec().unwrap();
    let mut dst = vec![0.0f32; N];
    g.throughput(bytes(2));
    g.bench_function("memcpy", |bch| bch.iter(|| dst.copy_from_slice(&src)));
    g.bench_function("scale", |bch| {
        bch.iter(|| ops::scale(&mut out, &a, 0.5).unwrap())
    });
    g.throughput(bytes(3));
    g.bench_function("add", |bch| {
        bch.iter(|| ops::add(&mut out, &a, &b).unwrap())
    });
    g.bench_function("axpy", |bch| {
        bch.iter(|| ops::axpy(&mut out, 0.5, &a).unwrap())
    });
    g.bench_function("swiglu_fwd", |bch| {
        bch.iter(|| ops::swiglu_fwd(&mut out, &a, &b).unwrap())
    });
    g.throughput(bytes(1));
    g.bench_function("sum_squares", |bch| {
        bch.iter(|| ops::sum_squares(&a).unwrap())
    });
    g.throughput(Throughput::BytesDecimal((N * 6) as u64));
    let mut ob = Tensor::zeros(&[N], DType::BF16, &Device::Cpu).unwrap();
    g.bench_function("cast_f32_bf16", |bch| {
        bch.iter(|| ops::cast_into(&mut ob, &a).unwrap())
    });
    g.bench_function("cast_bf16_f32", |bch| {
        bch.iter(|| ops::cast_into(&mut out, &ob).unwrap())
    });
    {
        let (mut dg, mut du) = (zeros(&[N]), zeros(&[N]));
        let dy = randn(&[N], &mut rng);
        g.throughput(bytes(5));
        g.bench_function("swiglu_bwd", |bch| {
            bch.iter(|| ops::swiglu_bwd(&mut dg, &mut du, &dy, &a, &b).unwrap())
        });
    }
    {
        let rows = N / 512;
        let x = a.reshape(&[rows, 512]).unwrap();
        let w = randn(&[512], &mut rng);
        let mut y = zeros(&[rows, 512]);
        let mut rstd = zeros(&[rows]);
        g.throughput(bytes(2));
        g.bench_function("rmsnorm_fwd_c512", |bch| {
            bch.iter(|| ops::rmsnorm_fwd(&mut y, &mut rstd, &x, &w, 1e-5).unwrap())
        });
        let dy = b.reshape(&[rows, 512]).unwrap();
        let (mut dx, mut dw) = (zeros(&[rows, 512]), zeros(&[512]));
        g.throughput(bytes(3));
        g.bench_function("rmsnorm_bwd_c512", |bch| {
            bch.iter(|| ops::rmsnorm_bwd(&mut dx, &mut dw, &dy, &x, &w, &rstd, false).unwrap())
        });
    }
    {
        let (v, rows) = (32768usize, N / 32768);
        let logits = a.reshape(&[rows, v]).unwrap();
        let tg = Tensor::from_vec(
            (0..rows as i64)
                .map(|i| i * 7 % v as i64)
                .collect::<Vec<_>>(),
            &[rows],
        )
        .unwrap();
        let (mut l, mut lse) = (zeros(&[rows]), zeros(&[rows]));
        g.throughput(bytes(1));
        g.bench_function("cross_entropy_fwd_v32k", |bch| {
            bch.iter(|| ops::cross_entropy_fwd(&mut l, &mut lse, &logits, &tg, -100).unwrap())
        });
        let mut dl = zeros(&[rows, v]);
        g.throughput(bytes(2));
        g.bench_function("cross_entropy_bwd_v32k", |bch| {
            bch.iter(|| {
                ops::cross_entropy_bwd(&mut dl, &logits, &lse, &tg, -100, 1.0, None).unwrap()
            })
        });
        g.bench_function("softmax_v32k", |bch| {
            bch.iter(|| ops::softmax(&mut dl, &logits, 1.0).unwrap())
        });
    }
    {
        let (mut p, mut m, mut v) = (a.copy().unwrap(), zeros(&[N]), zeros(&[N]));
        let mut bf = Tensor::zeros(&[N], DType::BF16, &Device::Cpu).unwrap();
        // reads p, g, m, v; writes p, m, v, bf16 copy
        g.throughput(Throughput::BytesDecimal((N * (7 * 4 + 2)) as u64));
        g.bench_function("adamw_with_bf16_copy", |bch| {
            bch.iter(|| {
                ops::adamw_step(
                    &mut p,
                    &b,
                    &mut m,
                    &mut v,
                    Some(&mut bf),
                    &AdamWParams::default(),
                )
                .unwrap()
            })
        });
    }
    {
        let (v, c, n) = (32768usize, 512usize, 4096usize);
        let table = randn(&[v, c], &mut rng);
        let ids = Tensor::from_vec(
            (0..n as i64)
                .map(|i| i * 131 % v as i64)
                .collect::<Vec<_>>(),
            &[n],
        )
        .unwrap();
        let mut e = zeros(&[n, c]);
        g.throughput(Throughput::BytesDecimal((2 * n * c * 4) as u64));
        g.bench_function("embedding_fwd", |bch| {
            bch.iter(|| ops::embedding_fwd(&mut e, &ids, &table).unwrap())
        });
        let mut dt = zeros(&[v, c]);
        g.bench_function("embedding_bwd", |bch| {
            bch.iter(|| ops::embedding_bwd(&mut dt, &e, &ids).unwrap())
        });
    }
    g.finish();
}

/// BF16 inputs and outputs on the ops that read/write half tensors piecewise: a regression
/// check that they convert only what they touch (e.g. embedding_fwd, not the whole table).
fn bf16_paths<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(group("bf16_paths"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut rng = Rng::new(4);
    let bf = |t: Tensor| t.cast(DType::BF16).unwrap();
    let bzeros = |shape: &[usize]| Tensor::zeros(shape, DType::BF16, &Device::Cpu).unwrap();
    const M: usize = 1 << 20;
    let (a, b, dy) = (
        bf(randn(&[M], &mut rng)),
        bf(randn(&[M], &mut rng)),
        bf(randn(&[M], &mut rng)),
    );
    let (mut o, mut o2) = (bzeros(&[M]), bzeros(&[M]));
    g.bench_function("swiglu_fwd_1m", |bch| {
        bch.iter(|| ops::swiglu_fwd(&mut o, &a, &b).unwrap())
    });
    g.bench_function("swiglu_bwd_1m", |bch| {
        bch.iter(|| ops::swiglu_bwd(&mut o, &mut o2, &dy, &a, &b).unwrap())
    });
    g.bench_function("add_1m", |bch| {
        bch.iter(|| ops::add(&mut o, &a, &b).unwrap())
    });
    {
        let rows = M / 512;
        let x = a.reshape(&[rows, 512]).unwrap();
        let w = bf(randn(&[512], &mut rng));
        let (mut y, mut rstd) = (bzeros(&[rows, 512]), zeros(&[rows]));
        g.bench_function("rmsnorm_fwd_c512_1m", |bch| {
            bch.iter(|| ops::rmsnorm_fwd(&mut y, &mut rstd, &x, &w, 1e-5).unwrap())
        });
        let d = dy.reshape(&[rows, 512]).unwrap();
        let (mut dx, mut dw) = (bzeros(&[rows, 512]), zeros(&[512]));
        g.bench_function("rmsnorm_bwd_c512_1m", |bch| {
            bch.iter(|| ops::rmsnorm_bwd(&mut dx, &mut dw, &d, &x, &w, &rstd, false).unwrap())
        });
    }
    {
        let (v, rows) = (32768usize, M / 32768);
        let logits = a.reshape(&[rows, v]).unwrap();
        let tg =
            Tensor::from_vec((0..rows as i64).map(|i| i * 7).collect::<Vec<_>>(), &[rows]).unwrap();
        let (mut lp, mut lse, dlp) = (zeros(&[rows]), zeros(&[rows]), randn(&[rows], &mut rng));
        g.bench_function("logprobs_fwd_v32k_1m", |bch| {
            bch.iter(|| {
                ops::token_logprobs_fwd(&mut lp, &mut lse, &logits, &tg, 1.0, None).unwrap()
            })
        });
        let mut dl = bzeros(&[rows, v]);
        g.bench_function("logprobs_bwd_v32k_1m", |bch| {
            bch.iter(|| {
                ops::token_logprobs_bwd(&mut dl, &dlp, &logits, &lse, &tg, 1.0, None).unwrap()
            })
        });
        g.bench_function("softmax_v32k_1m", |bch| {
            bch.iter(|| ops::softmax(&mut dl, &logits, 1.0).unwrap())
        });
    }
    {
        let (v, c, n) = (32768usize, 512usize, 4096usize);
        let table = bf(randn(&[v, c], &mut rng));
        let ids = Tensor::from_vec(
            (0..n as i64)
                .map(|i| i * 131 % v as i64)
                .collect::<Vec<_>>(),
            &[n],
        )
        .unwrap();
        let mut e = bzeros(&[n, c]);
        g.bench_function("embedding_fwd_v32k_c512_n4k", |bch| {
            bch.iter(|| ops::embedding_fwd(&mut e, &ids, &table).unwrap())
        });
        let mut dt = zeros(&[v, c]);
        g.bench_function("embedding_bwd_v32k_c512_n4k", |bch| {
            bch.iter(|| ops::embedding_bwd(&mut dt, &e, &ids).unwrap())
        });
    }
    g.finish();
}

/// The model's training shape: batch 4 x 256 tokens, 8 heads of 64 (hidden 512), GQA 8/4.
fn attention<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(group("attention"));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let (b, t, h, hkv, d) = (4usize, 256usize, 8usize, 4usize, 64usize);
    let mut rng = Rng::new(3);
    let q = randn(&[b, t, h, d], &mut rng);
    let k = randn(&[b, t, hkv, d], &mut rng);
    let v = randn(&[b, t, hkv, d], &mut rng);
    let dy = randn(&[b, t, h, d], &mut rng);
    let p = AttentionParams::new(d);
    let (mut out, mut lse) = (zeros(&[b, t, h, d]), zeros(&[b, h, t]));
    // causal: half of the 4*B*H*T*T*D multiply-adds of the full score and value products
    g.throughput(Throughput::Elements((2 * b * h * t * t * d) as u64));
    g.bench_function("fwd_b4_t256_h8_kv4_d64", |bch| {
        bch.iter(|| ops::attention_fwd(&mut out, Some(&mut lse), &q, &k, &v, None, &p).unwrap())
    });
    let (mut dq, mut dk, mut dv) = (
        zeros(&[b, t, h, d]),
        zeros(&[b, t, hkv, d]),
        zeros(&[b, t, hkv, d]),
    );
    g.throughput(Throughput::Elements((5 * b * h * t * t * d) as u64));
    g.bench_function("bwd_b4_t256_h8_kv4_d64", |bch| {
        bch.iter(|| {
            ops::attention_bwd(
                &mut dq, &mut dk, &mut dv, &dy, &q, &k, &v, &out, &lse, None, &p,
            )
            .unwrap()
        })
    });
    g.finish();
}

/// Group name; CPU-time runs get a `cpu_` prefix so their saved results never mix with wall time.
fn group(name: &str) -> String {
    if std::env::var_os("RUNTIME_BENCH_CPU_TIME").is_some() {
        format!("cpu_{name}")
    } else {
        name.to_string()
    }
}

/// CPU time (ns) consumed so far by all threads of this process.
fn process_cpu_ns() -> u64 {
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// Process CPU time as a criterion measurement (values in ns, like `WallTime`).
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        process_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        process_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "ms cpu"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        // per CPU-second: units per ns == G units per s
        let (n, unit) = match *t {
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => (b as f64, "GB/cpu-s"),
            Throughput::Elements(e) => (e as f64, "Gelem/cpu-s"),
            Throughput::Bits(b) => (b as f64, "Gbit/cpu-s"),
        };
        values.iter_mut().for_each(|v| *v = n / *v);
        unit
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn run_all<M: Measurement>(c: &mut Criterion<M>) {
    matmul(c);
    memory_bound(c);
    bf16_paths(c);
    attention(c);
}

fn main() {
    if std::env::var_os("RUNTIME_BENCH_CPU_TIME").is_some() {
        let mut c = Criterion::default()
            .with_measurement(CpuTime)
            .configure_from_args();
        run_all(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        run_all(&mut c);
        c.final_summary();
    }
}
