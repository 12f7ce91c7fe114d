//! The CUDA backend against the CPU backend through the public `ops` API: the same fresh random
//! inputs on both devices, CUDA outputs poisoned with NaN before each op, and
//! ‖gpu − cpu‖ / ‖cpu‖ ≤ 1e-5 (f32) or 1e-2 (bf16). Each test skips with a printed line when
//! this machine has no CUDA driver, NVRTC or device.
#![cfg(feature = "cuda")]

use runtime::{ops, AdamWParams, AttentionParams, DType, Device, MatmulParams, Rng, Tensor};

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
fn layer_backwards_and_scale_inplace_match_cpu() {
    if !have_gpu("layer_backwards_and_scale_inplace_match_cpu") {
        return;
    }
    let mut r = rng("backwards");
    for dtype in [DType::F32, DType::BF16] {
        let (n, c, vocab) = (21, 80, 37);
        let (x, w, dy) = (
            rand(&[n, c], dtype, &mut r),
            rand(&[c], dtype, &mut r),
            rand(&[n, c], dtype, &mut r),
        );
        let (mut out, mut rstd) = (
            Tensor::zeros(&[n, c], dtype, &Device::Cpu).unwrap(),
            Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap(),
        );
        ops::rmsnorm_fwd(&mut out, &mut rstd, &x, &w, 1e-5).unwrap();
        for accumulate in [false, true] {
            // dw always accumulates, dx when asked: both start from the same random prior.
            let (dx0, dw0) = (rand(&[n, c], dtype, &mut r), rand(&[c], DType::F32, &mut r));
            let (mut dx, mut dw) = (dx0.copy().unwrap(), dw0.copy().unwrap());
            let mut gdx = if accumulate {
                gpu(&dx0)
            } else {
                poisoned(&[n, c], dtype)
            };
            let mut gdw = gpu(&dw0);
            ops::rmsnorm_bwd(&mut dx, &mut dw, &dy, &x, &w, &rstd, accumulate).unwrap();
            ops::rmsnorm_bwd(
                &mut gdx,
                &mut gdw,
                &gpu(&dy),
                &gpu(&x),
                &gpu(&w),
                &gpu(&rstd),
                accumulate,
            )
            .unwrap();
            rel_err(
                &format!("rmsnorm_bwd dx acc={accumulate}"),
                &gdx,
                &dx,
                tol(dtype),
            );
            rel_err(&format!("rmsnorm_bwd dw acc={accumulate}"), &gdw, &dw, 1e-5);
        }

        let (gate, up) = (rand(&[n, c], dtype, &mut r), rand(&[n, c], dtype, &mut r));
        let (mut dg, mut du) = (
            Tensor::zeros(&[n, c], dtype, &Device::Cpu).unwrap(),
            Tensor::zeros(&[n, c], dtype, &Device::Cpu).unwrap(),
        );
        let (mut gdg, mut gdu) = (poisoned(&[n, c], dtype), poisoned(&[n, c], dtype));
        ops::swiglu_bwd(&mut dg, &mut du, &dy, &gate, &up).unwrap();
        ops::swiglu_bwd(&mut gdg, &mut gdu, &gpu(&dy), &gpu(&gate), &gpu(&up)).unwrap();
        rel_err("swiglu_bwd dgate", &gdg, &dg, tol(dtype));
        rel_err("swiglu_bwd dup", &gdu, &du, tol(dtype));

        // Repeated ids accumulate into one row; dtable starts from a random prior.
        let ids: Vec<i64> = (0..n).map(|i| (i as u64 * 7 % 5) as i64 * 3).collect();
        let ids = Tensor::from_vec(ids, &[n]).unwrap();
        let t0 = rand(&[vocab, c], DType::F32, &mut r);
        let (mut dt, mut gdt) = (t0.copy().unwrap(), gpu(&t0));
        ops::embedding_bwd(&mut dt, &dy, &ids).unwrap();
        ops::embedding_bwd(&mut gdt, &gpu(&dy), &gpu(&ids)).unwrap();
        rel_err("embedding_bwd", &gdt, &dt, 1e-5);

        let (mut y, mut gy) = (x.copy().unwrap(), gpu(&x));
        ops::scale_inplace(&mut y, -0.37).unwrap();
        ops::scale_inplace(&mut gy, -0.37).unwrap();
        rel_err("scale_inplace", &gy, &y, tol(dtype));
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

/// Index tensor on the CPU (I64) and its GPU copy as I32 or I64.
fn ids(v: Vec<i64>, shape: &[usize], dtype: DType) -> (Tensor, Tensor) {
    let t = Tensor::from_vec(v, shape).unwrap();
    let g = gpu(&t.cast(dtype).unwrap());
    (t, g)
}

#[test]
fn rope_matches_cpu_and_rejects_bad_positions() {
    if !have_gpu("rope_matches_cpu_and_rejects_bad_positions") {
        return;
    }
    let mut r = rng("rope");
    let scaling = runtime::RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 64,
    };
    let (cos, sin) = runtime::rope_tables(64, 500000.0, &scaling, 300, &Device::Cpu).unwrap();
    let (gcos, gsin) = (gpu(&cos), gpu(&sin));
    for (dtype, pos_dtype) in [(DType::F32, DType::I64), (DType::BF16, DType::I32)] {
        let (b, t, h, d) = (2, 9, 3, 64);
        let x = rand(&[b, t, h, d], dtype, &mut r);
        let pos: Vec<i64> = (0..b * t).map(|_| r.below(300) as i64).collect();
        let (pos, gpos) = ids(pos, &[b, t], pos_dtype);
        let (mut want, mut got) = (x.copy().unwrap(), gpu(&x));
        ops::rope_fwd(&mut want, &cos, &sin, &pos).unwrap();
        ops::rope_fwd(&mut got, &gcos, &gsin, &gpos).unwrap();
        rel_err(&format!("rope_fwd {dtype:?}"), &got, &want, tol(dtype));
        ops::rope_bwd(&mut want, &cos, &sin, &pos).unwrap();
        ops::rope_bwd(&mut got, &gcos, &gsin, &gpos).unwrap();
        rel_err(&format!("rope_bwd {dtype:?}"), &got, &want, tol(dtype));
    }
    let mut x = gpu(&rand(&[2, 1, 64], DType::F32, &mut r));
    let (_, bad) = ids(vec![3, 300], &[2], DType::I64);
    let e = ops::rope_fwd(&mut x, &gcos, &gsin, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("position 300"), "{e}");
}

/// Forward and backward of one attention configuration on both devices.
#[allow(clippy::too_many_arguments)]
fn attention_case(
    r: &mut Rng,
    dtype: DType,
    (b, t, s, h, hkv, d): (usize, usize, usize, usize, usize, usize),
    q_offset: usize,
    masked: bool,
) {
    let what =
        format!("attention {dtype:?} b{b} t{t} s{s} h{h}/{hkv} d{d} off{q_offset} mask={masked}");
    let q = rand(&[b, t, h, d], dtype, r);
    let (k, v) = (
        rand(&[b, s, hkv, d], dtype, r),
        rand(&[b, s, hkv, d], dtype, r),
    );
    let mask: Vec<i64> = (0..b * s).map(|i| i64::from(i % 5 != 3)).collect();
    let (mask, gmask) = ids(mask, &[b, s], DType::I64);
    let (m, gm) = if masked {
        (Some(&mask), Some(&gmask))
    } else {
        (None, None)
    };
    let p = AttentionParams {
        scale: 1.0 / (d as f32).sqrt(),
        q_offset,
    };
    let mut out = Tensor::zeros(&[b, t, h, d], dtype, &Device::Cpu).unwrap();
    let mut lse = Tensor::zeros(&[b, h, t], DType::F32, &Device::Cpu).unwrap();
    let (mut gout, mut glse) = (
        poisoned(&[b, t, h, d], dtype),
        poisoned(&[b, h, t], DType::F32),
    );
    let (gq, gk, gv) = (gpu(&q), gpu(&k), gpu(&v));
    ops::attention_fwd(&mut out, Some(&mut lse), &q, &k, &v, m, &p).unwrap();
    ops::attention_fwd(&mut gout, Some(&mut glse), &gq, &gk, &gv, gm, &p).unwrap();
    rel_err(&format!("{what} out"), &gout, &out, tol(dtype));
    // lse is f32 in both; rows with no key are -inf on both.
    let (a, c) = (glse.to_f32_vec().unwrap(), lse.to_f32_vec().unwrap());
    for (x, y) in a.iter().zip(&c) {
        assert!(
            (x == y) || (x - y).abs() <= 1e-4 * y.abs().max(1.0),
            "{what} lse {x} vs {y}"
        );
    }
    let dout = rand(&[b, t, h, d], dtype, r);
    let mut dq = Tensor::zeros(&[b, t, h, d], dtype, &Device::Cpu).unwrap();
    let mut dk = Tensor::zeros(&[b, s, hkv, d], dtype, &Device::Cpu).unwrap();
    let mut dv = dk.copy().unwrap();
    let mut gdq = poisoned(&[b, t, h, d], dtype);
    let (mut gdk, mut gdv) = (
        poisoned(&[b, s, hkv, d], dtype),
        poisoned(&[b, s, hkv, d], dtype),
    );
    ops::attention_bwd(
        &mut dq, &mut dk, &mut dv, &dout, &q, &k, &v, &out, &lse, m, &p,
    )
    .unwrap();
    ops::attention_bwd(
        &mut gdq,
        &mut gdk,
        &mut gdv,
        &gpu(&dout),
        &gq,
        &gk,
        &gv,
        &gout,
        &glse,
        gm,
        &p,
    )
    .unwrap();
    rel_err(&format!("{what} dq"), &gdq, &dq, tol(dtype));
    rel_err(&format!("{what} dk"), &gdk, &dk, tol(dtype));
    rel_err(&format!("{what} dv"), &gdv, &dv, tol(dtype));
}

#[test]
fn attention_fwd_bwd_match_cpu_with_gqa_offsets_and_masks() {
    if !have_gpu("attention_fwd_bwd_match_cpu_with_gqa_offsets_and_masks") {
        return;
    }
    let mut r = rng("attention");
    for dtype in [DType::F32, DType::BF16] {
        attention_case(&mut r, dtype, (2, 17, 17, 4, 2, 64), 0, false);
        attention_case(&mut r, dtype, (1, 33, 33, 8, 2, 128), 0, true);
        attention_case(&mut r, dtype, (2, 5, 20, 6, 3, 32), 7, false);
        attention_case(&mut r, dtype, (3, 1, 9, 2, 1, 16), 8, true);
    }
}

#[test]
fn kv_cache_write_and_decode_match_cpu() {
    if !have_gpu("kv_cache_write_and_decode_match_cpu") {
        return;
    }
    let mut r = rng("decode");
    for dtype in [DType::F32, DType::BF16] {
        let (b, s_max, hkv, h, d, t) = (3, 24, 2, 4, 32, 2);
        let cache0 = rand(&[b, s_max, hkv, d], dtype, &mut r);
        let new = rand(&[b, t, hkv, d], dtype, &mut r);
        let (starts, gstarts) = ids(vec![0, 5, 22], &[b], DType::I32);
        let (mut kc, mut gkc) = (cache0.copy().unwrap(), gpu(&cache0));
        ops::kv_cache_write(&mut kc, &new, &starts).unwrap();
        ops::kv_cache_write(&mut gkc, &gpu(&new), &gstarts).unwrap();
        rel_err(&format!("kv_cache_write {dtype:?}"), &gkc, &kc, tol(dtype));
        assert_eq!(gkc.to_f32_vec().unwrap(), kc.to_f32_vec().unwrap());

        let (_, bad) = ids(vec![0, 5, 23], &[b], DType::I64);
        let e = ops::kv_cache_write(&mut gkc, &gpu(&new), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside cache"), "{e}");

        let vc = rand(&[b, s_max, hkv, d], dtype, &mut r);
        let q = rand(&[b, t, h, d], dtype, &mut r);
        let (lens, glens) = ids(vec![2, 7, 24], &[b], DType::I64);
        let mut out = Tensor::zeros(&[b, t, h, d], dtype, &Device::Cpu).unwrap();
        let mut gout = poisoned(&[b, t, h, d], dtype);
        let scale = 1.0 / (d as f32).sqrt();
        ops::attention_decode(&mut out, &q, &kc, &vc, &lens, scale).unwrap();
        ops::attention_decode(&mut gout, &gpu(&q), &gkc, &gpu(&vc), &glens, scale).unwrap();
        rel_err(
            &format!("attention_decode {dtype:?}"),
            &gout,
            &out,
            tol(dtype),
        );

        let (_, bad) = ids(vec![2, 1, 24], &[b], DType::I32);
        let e = ops::attention_decode(&mut gout, &gpu(&q), &gkc, &gpu(&vc), &bad, scale)
            .unwrap_err()
            .to_string();
        assert!(e.contains("kv_lens[1]"), "{e}");
    }
}

#[test]
fn logprobs_and_cross_entropy_match_cpu() {
    if !have_gpu("logprobs_and_cross_entropy_match_cpu") {
        return;
    }
    let mut r = rng("logprobs");
    for dtype in [DType::F32, DType::BF16] {
        let (n, vocab) = (23, 1001);
        let logits = rand(&[n, vocab], dtype, &mut r).cast(DType::F32).unwrap();
        let mut big = logits.copy().unwrap();
        ops::scale_inplace(&mut big, 8.0).unwrap();
        let logits = big.cast(dtype).unwrap();
        let mut tg: Vec<i64> = (0..n).map(|_| r.below(vocab as u64) as i64).collect();
        tg[4] = -100;
        tg[n - 1] = -100;
        let (tg, gtg) = ids(tg, &[n], DType::I64);
        let gl = gpu(&logits);
        for (temp, ignore) in [(1.0f32, Some(-100)), (0.7, Some(-100))] {
            let (mut lp, mut lse) = (
                Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap(),
                Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap(),
            );
            let (mut glp, mut glse) = (poisoned(&[n], DType::F32), poisoned(&[n], DType::F32));
            ops::token_logprobs_fwd(&mut lp, &mut lse, &logits, &tg, temp, ignore).unwrap();
            ops::token_logprobs_fwd(&mut glp, &mut glse, &gl, &gtg, temp, ignore).unwrap();
            rel_err(&format!("logprobs {dtype:?} T={temp}"), &glp, &lp, 1e-5);
            rel_err(&format!("lse {dtype:?} T={temp}"), &glse, &lse, 1e-5);
            let dlogp = rand(&[n], DType::F32, &mut r);
            let mut d = Tensor::zeros(&[n, vocab], dtype, &Device::Cpu).unwrap();
            let mut gd = poisoned(&[n, vocab], dtype);
            ops::token_logprobs_bwd(&mut d, &dlogp, &logits, &lse, &tg, temp, ignore).unwrap();
            ops::token_logprobs_bwd(&mut gd, &gpu(&dlogp), &gl, &glse, &gtg, temp, ignore).unwrap();
            rel_err(&format!("dlogits {dtype:?} T={temp}"), &gd, &d, tol(dtype));
        }
        let (mut ls, mut lse) = (
            Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap(),
            Tensor::zeros(&[n], DType::F32, &Device::Cpu).unwrap(),
        );
        let (mut gls, mut glse) = (poisoned(&[n], DType::F32), poisoned(&[n], DType::F32));
        let want = ops::cross_entropy_fwd(&mut ls, &mut lse, &logits, &tg, -100).unwrap();
        let got = ops::cross_entropy_fwd(&mut gls, &mut glse, &gl, &gtg, -100).unwrap();
        assert_eq!(want.count, got.count);
        assert!(
            (want.mean - got.mean).abs() <= 1e-5 * want.mean.abs(),
            "cross-entropy {} vs {}",
            got.mean,
            want.mean
        );
        rel_err(&format!("ce losses {dtype:?}"), &gls, &ls, 1e-5);
        let mut d = Tensor::zeros(&[n, vocab], dtype, &Device::Cpu).unwrap();
        let mut gd = poisoned(&[n, vocab], dtype);
        let sc = 1.0 / want.count as f32;
        ops::cross_entropy_bwd(&mut d, &logits, &lse, &tg, -100, sc, None).unwrap();
        ops::cross_entropy_bwd(&mut gd, &gl, &glse, &gtg, -100, sc, None).unwrap();
        rel_err(&format!("ce dlogits {dtype:?}"), &gd, &d, tol(dtype));

        let (_, bad) = ids(vec![vocab as i64; n], &[n], DType::I32);
        let e = ops::cross_entropy_fwd(&mut gls, &mut glse, &gl, &bad, -100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside vocabulary"), "{e}");
    }
}

#[test]
fn adamw_matches_cpu_with_and_without_a_copy() {
    if !have_gpu("adamw_matches_cpu_with_and_without_a_copy") {
        return;
    }
    let mut r = rng("adamw");
    let shape = [67, 129];
    let p = AdamWParams {
        lr: 3e-3,
        weight_decay: 0.1,
        step: 3,
        grad_scale: 0.5,
        ..Default::default()
    };
    for (grad_dtype, copy_dtype) in [
        (DType::F32, None),
        (DType::F32, Some(DType::BF16)),
        (DType::BF16, Some(DType::BF16)),
        (DType::F32, Some(DType::F32)),
    ] {
        let what = format!("adamw grad {grad_dtype:?} copy {copy_dtype:?}");
        let w = rand(&shape, DType::F32, &mut r);
        let g = rand(&shape, grad_dtype, &mut r);
        let m = rand(&shape, DType::F32, &mut r);
        let mut v = rand(&shape, DType::F32, &mut r);
        ops::mul(&mut v, &m.copy().unwrap(), &m).unwrap();
        let (mut cw, mut cm, mut cv) = (w.copy().unwrap(), m.copy().unwrap(), v.copy().unwrap());
        let (mut gw, mut gm, mut gv) = (gpu(&w), gpu(&m), gpu(&v));
        let mut cc = copy_dtype.map(|d| Tensor::zeros(&shape, d, &Device::Cpu).unwrap());
        let mut gc = copy_dtype.map(|d| poisoned(&shape, d));
        ops::adamw_step(&mut cw, &g, &mut cm, &mut cv, cc.as_mut(), &p).unwrap();
        ops::adamw_step(&mut gw, &gpu(&g), &mut gm, &mut gv, gc.as_mut(), &p).unwrap();
        rel_err(&format!("{what} param"), &gw, &cw, 1e-5);
        rel_err(&format!("{what} m"), &gm, &cm, 1e-5);
        rel_err(&format!("{what} v"), &gv, &cv, 1e-5);
        if let (Some(c), Some(gc)) = (&cc, &gc) {
            rel_err(&format!("{what} copy"), gc, c, tol(c.dtype()));
        }
    }
}

#[test]
fn copy_rows_and_casts_match_cpu() {
    if !have_gpu("copy_rows_and_casts_match_cpu") {
        return;
    }
    let mut r = rng("copy_rows");
    for dtype in [DType::F32, DType::BF16, DType::I64] {
        let dst0 = rand(&[6, 5, 3], DType::F32, &mut r);
        let src0 = rand(&[2, 5, 3], DType::F32, &mut r);
        let scale = if dtype.is_int() { 100.0 } else { 1.0 };
        let (mut a, mut b) = (dst0.copy().unwrap(), src0.copy().unwrap());
        ops::scale_inplace(&mut a, scale).unwrap();
        ops::scale_inplace(&mut b, scale).unwrap();
        let (dst, src) = (a.cast(dtype).unwrap(), b.cast(dtype).unwrap());
        let (mut want, mut got) = (dst.copy().unwrap(), gpu(&dst));
        ops::copy_rows(&mut want, 3, &src).unwrap();
        ops::copy_rows(&mut got, 3, &gpu(&src)).unwrap();
        assert_eq!(
            got.to_f32_vec().unwrap(),
            want.to_f32_vec().unwrap(),
            "copy_rows {dtype:?}"
        );
    }
    for (from, to) in [
        (DType::F32, DType::BF16),
        (DType::BF16, DType::F32),
        (DType::F32, DType::F16),
        (DType::F16, DType::BF16),
    ] {
        let x = rand(&[41, 7], from, &mut r);
        let want = x.cast(to).unwrap();
        let mut got = poisoned(&[41, 7], to);
        ops::cast_into(&mut got, &gpu(&x)).unwrap();
        rel_err(&format!("cast {from:?} -> {to:?}"), &got, &want, tol(to));
    }
    // A fill on the device (zeroing gradients) goes through the same copy path.
    let mut z = poisoned(&[3, 4], DType::F32);
    z.fill(2.5).unwrap();
    assert_eq!(z.to_f32_vec().unwrap(), vec![2.5; 12]);
}

#[test]
fn a_mixed_dtype_call_is_an_error_naming_the_op() {
    if !have_gpu("a_mixed_dtype_call_is_an_error_naming_the_op") {
        return;
    }
    let a = gpu(&Tensor::zeros(&[4, 8], DType::F32, &Device::Cpu).unwrap());
    let b = gpu(&Tensor::zeros(&[4, 8], DType::BF16, &Device::Cpu).unwrap());
    let mut out = poisoned(&[4, 8], DType::F32);
    let e = ops::add(&mut out, &a, &b).unwrap_err().to_string();
    assert!(
        e.contains("add") && e.contains("not implemented on CUDA"),
        "{e}"
    );
}
