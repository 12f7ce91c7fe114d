//! The CUDA backend against the CPU backend through the public `ops` API: the same fresh random
//! inputs on both devices, CUDA outputs poisoned with NaN before each op, and
//! ‖gpu − cpu‖ / ‖cpu‖ ≤ 1e-5 (f32) or 1e-2 (bf16). Each test skips with a printed line when
//! this machine has no CUDA driver, NVRTC or device.
#![cfg(feature = "cuda")]

use runtime::{ops, DType, Device, MatmulParams, Rng, Tensor};

const GPU: Device = Device::Cuda(0);

fn have_gpu(test: &str) -> bool {
    // SAFETY: only tries to dlopen libcuda; cudarc panics on first use when it is absent.
    if !unsafe { kernels::cudarc::driver::sys::is_culib_present() } {
        eprintln!("skipping {test}: no CUDA driver (libcuda.so not found)");
        return false;
    }
    if let Some(why) = kernels::context::unavailable_reason() {
        eprintln!("skipping {test}: {why}");
        return false;
    }
    true
}

/// Seeded from the clock (fresh inputs every run); SWERL_TEST_SEED replays a run.
fn rng(test: &str) -> Rng {
    let seed = std::env::var("SWERL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {seed}");
    Rng::new(seed)
}

fn rand(shape: &[usize], dtype: DType, rng: &mut Rng) -> Tensor {
    let mut t = Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    runtime::fill_uniform(&mut t, -1.0, 1.0, rng).unwrap();
    t.cast(dtype).unwrap()
}

fn gpu(t: &Tensor) -> Tensor {
    t.to_device(&GPU).unwrap()
}

/// A CUDA output of `shape` filled with NaN, so an op that skips writing cannot pass.
fn poisoned(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::full(shape, f64::NAN, dtype, &GPU).unwrap()
}

fn rel_err(test: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.device(), &GPU, "{test}: result not on the GPU");
    let g = got.to_f32_vec().unwrap();
    let w = want.to_f32_vec().unwrap();
    assert_eq!(g.len(), w.len(), "{test}: length");
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in g.iter().zip(&w) {
        num += (*a as f64 - *b as f64).powi(2);
        den += (*b as f64).powi(2);
    }
    let e = num.sqrt() / den.sqrt().max(1e-30);
    eprintln!("{test}: relative error {e:.3e} (tol {tol:.0e})");
    assert!(e <= tol, "{test}: relative error {e} > {tol}");
}

fn tol(dtype: DType) -> f64 {
    if dtype == DType::F32 {
        1e-5
    } else {
        1e-2
    }
}

#[test]
fn elementwise_and_reductions_match_cpu() {
    if !have_gpu("elementwise_and_reductions_match_cpu") {
        return;
    }
    let mut r = rng("elementwise");
    for dtype in [DType::F32, DType::BF16] {
        let shape = [37, 129];
        let (a, b) = (rand(&shape, dtype, &mut r), rand(&shape, dtype, &mut r));
        let (ga, gb) = (gpu(&a), gpu(&b));

        let mut want = Tensor::zeros(&shape, dtype, &Device::Cpu).unwrap();
        let mut got = poisoned(&shape, dtype);
        ops::add(&mut want, &a, &b).unwrap();
        ops::add(&mut got, &ga, &gb).unwrap();
        rel_err("add", &got, &want, tol(dtype));

        let mut got = poisoned(&shape, dtype);
        ops::mul(&mut want, &a, &b).unwrap();
        ops::mul(&mut got, &ga, &gb).unwrap();
        rel_err("mul", &got, &want, tol(dtype));

        let mut got = poisoned(&shape, dtype);
        ops::scale(&mut want, &a, -1.75).unwrap();
        ops::scale(&mut got, &ga, -1.75).unwrap();
        rel_err("scale", &got, &want, tol(dtype));

        let (mut y, mut gy) = (b.copy().unwrap(), gpu(&b));
        ops::axpy(&mut y, 0.3, &a).unwrap();
        ops::axpy(&mut gy, 0.3, &ga).unwrap();
        rel_err("axpy", &gy, &y, tol(dtype));

        let (s, gs) = (ops::sum(&a).unwrap(), ops::sum(&ga).unwrap());
        let (q, gq) = (
            ops::sum_squares(&a).unwrap(),
            ops::sum_squares(&ga).unwrap(),
        );
        eprintln!("sum cpu {s} gpu {gs}; sum_squares cpu {q} gpu {gq}");
        assert!(
            (s - gs).abs() <= 1e-4 * q.sqrt().max(1.0),
            "sum {s} vs {gs}"
        );
        assert!((q - gq).abs() <= 1e-5 * q, "sum_squares {q} vs {gq}");

        // Round trip of a view: narrow then download.
        let rows = ga.narrow(5, 3).unwrap().to_f32_vec().unwrap();
        assert_eq!(rows, a.narrow(5, 3).unwrap().to_f32_vec().unwrap());
    }
}

#[test]
fn rmsnorm_swiglu_embedding_match_cpu() {
    if !have_gpu("rmsnorm_swiglu_embedding_match_cpu") {
        return;
    }
    let mut r = rng("layers");
    for dtype in [DType::F32, DType::BF16] {
        let (n, c) = (19, 96);
        let (x, w) = (rand(&[n, c], dtype, &mut r), rand(&[c], dtype, &mut r));
        let (mut out, mut rstd) = (
            Tensor::zeros(&[n, c], dtype, &Device::Cpu).unwrap(),
            Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap(),
        );
        let (mut gout, mut grstd) = (poisoned(&[n, c], dtype), poisoned(&[n], DType::F32));
        ops::rmsnorm_fwd(&mut out, &mut rstd, &x, &w, 1e-5).unwrap();
        ops::rmsnorm_fwd(&mut gout, &mut grstd, &gpu(&x), &gpu(&w), 1e-5).unwrap();
        rel_err("rmsnorm_fwd out", &gout, &out, tol(dtype));
        rel_err("rmsnorm_fwd rstd", &grstd, &rstd, tol(dtype));

        let (gate, up) = (rand(&[n, c], dtype, &mut r), rand(&[n, c], dtype, &mut r));
        let mut h = Tensor::zeros(&[n, c], dtype, &Device::Cpu).unwrap();
        let mut gh = poisoned(&[n, c], dtype);
        ops::swiglu_fwd(&mut h, &gate, &up).unwrap();
        ops::swiglu_fwd(&mut gh, &gpu(&gate), &gpu(&up)).unwrap();
        rel_err("swiglu_fwd", &gh, &h, tol(dtype));

        let vocab = 50;
        let table = rand(&[vocab, c], dtype, &mut r);
        let ids: Vec<i64> = (0..n).map(|_| r.below(vocab as u64) as i64).collect();
        let ids = Tensor::from_vec(ids, &[n]).unwrap();
        let mut e = Tensor::zeros(&[n, c], dtype, &Device::Cpu).unwrap();
        let mut ge = poisoned(&[n, c], dtype);
        ops::embedding_fwd(&mut e, &ids, &table).unwrap();
        ops::embedding_fwd(&mut ge, &gpu(&ids), &gpu(&table)).unwrap();
        rel_err("embedding_fwd", &ge, &e, tol(dtype));

        let mut p = Tensor::zeros(&[n, vocab], dtype, &Device::Cpu).unwrap();
        let mut gp = poisoned(&[n, vocab], dtype);
        let logits = rand(&[n, vocab], dtype, &mut r);
        ops::softmax(&mut p, &logits, 0.7).unwrap();
        ops::softmax(&mut gp, &gpu(&logits), 0.7).unwrap();
        rel_err("softmax", &gp, &p, tol(dtype));
    }
}

#[test]
fn matmul_matches_cpu_in_every_layout() {
    if !have_gpu("matmul_matches_cpu_in_every_layout") {
        return;
    }
    let mut r = rng("matmul");
    let (m, n, k) = (33, 47, 64);
    for dtype in [DType::F32, DType::BF16] {
        for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
            let a_shape = if trans_a { [k, m] } else { [m, k] };
            let b_shape = if trans_b { [n, k] } else { [k, n] };
            let (a, b) = (rand(&a_shape, dtype, &mut r), rand(&b_shape, dtype, &mut r));
            let c0 = rand(&[m, n], DType::F32, &mut r);
            let p = MatmulParams {
                trans_a,
                trans_b,
                alpha: 0.5,
                beta: 1.0,
            };
            let (mut want, mut got) = (c0.copy().unwrap(), gpu(&c0));
            ops::matmul(&mut want, &a, &b, &p).unwrap();
            ops::matmul(&mut got, &gpu(&a), &gpu(&b), &p).unwrap();
            rel_err(
                &format!("matmul {dtype:?} ta={trans_a} tb={trans_b}"),
                &got,
                &want,
                tol(dtype),
            );
        }
    }
}

#[test]
fn an_op_without_a_kernel_is_an_error_naming_it() {
    if !have_gpu("an_op_without_a_kernel_is_an_error_naming_it") {
        return;
    }
    let mut dst = poisoned(&[4, 8], DType::F32);
    let src = gpu(&Tensor::zeros(&[2, 8], DType::F32, &Device::Cpu).unwrap());
    let e = ops::copy_rows(&mut dst, 1, &src).unwrap_err().to_string();
    assert!(
        e.contains("copy_rows") && e.contains("not implemented on CUDA"),
        "{e}"
    );
}
