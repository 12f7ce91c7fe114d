//! Each norm / elementwise / loss / optimizer kernel against its CPU twin, the runtime's own op
//! (`runtime::ops`), on fresh random inputs with the device outputs poisoned with NaN first.
//! Skips (with a printed reason) without a GPU.
#![cfg(feature = "cuda")]

mod common;

use common::*;
use half::{bf16, f16};
use kernels::Gpu;
use runtime::{ops, Device, Rng};

fn rmsnorm_case<E: Host>(g: &Gpu, rng: &mut Rng, rows: usize, d: usize) {
    let eps = 1e-5;
    let (xc, xd) = pair::<E>(g, &uniform(rng, rows * d, 2.0), &[rows, d]);
    let (wc, wd) = pair::<E>(g, &uniform(rng, d, 1.5), &[d]);
    let (dyc, dyd) = pair::<E>(g, &uniform(rng, rows * d, 1.0), &[rows, d]);
    let prior_dx = uniform(rng, rows * d, 1.0);
    let prior_dw = uniform(rng, d, 1.0);
    let (mut yc, mut rc) = (cpu_zeros::<E>(&[rows, d]), cpu_zeros::<f32>(&[rows]));
    ops::rmsnorm_fwd(&mut yc, &mut rc, &xc, &wc, eps).unwrap();
    let (mut y, mut rstd) = (poisoned::<E>(g, rows * d), poisoned::<f32>(g, rows));
    kernels::rmsnorm::rmsnorm_fwd(g, &xd, &wd, &mut y, &mut rstd, rows, d, eps).unwrap();
    assert_close("rmsnorm y", &down(g, &y), &cpu(&yc), E::TOL);
    assert_close("rmsnorm rstd", &down(g, &rstd), &cpu(&rc), 1e-5);
    for accumulate in [false, true] {
        // dw always accumulates; dx when asked: start both from the same random prior.
        let (mut dxc, mut dx) = pair::<E>(g, &prior_dx, &[rows, d]);
        let (mut dwc, mut dw) = pair::<f32>(g, &prior_dw, &[d]);
        if !accumulate {
            dx = poisoned::<E>(g, rows * d);
        }
        ops::rmsnorm_bwd(&mut dxc, &mut dwc, &dyc, &xc, &wc, &rc, accumulate).unwrap();
        kernels::rmsnorm::rmsnorm_bwd(
            g, &xd, &wd, &rstd, &dyd, &mut dx, &mut dw, rows, d, accumulate,
        )
        .unwrap();
        assert_close(
            &format!("rmsnorm dx acc={accumulate}"),
            &down(g, &dx),
            &cpu(&dxc),
            E::TOL,
        );
        assert_close(
            &format!("rmsnorm dw acc={accumulate}"),
            &down(g, &dw),
            &cpu(&dwc),
            1e-5,
        );
    }
}

#[test]
fn rmsnorm_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("rmsnorm");
    for (rows, d) in [(1, 1), (7, 33), (33, 1000), (5, 4096)] {
        rmsnorm_case::<f32>(&g, &mut rng, rows, d);
        rmsnorm_case::<bf16>(&g, &mut rng, rows, d);
        rmsnorm_case::<f16>(&g, &mut rng, rows, d);
    }
}

fn rope_case<E: Host>(g: &Gpu, rng: &mut Rng, tokens: usize, heads: usize, head_dim: usize) {
    let max_pos = 300;
    let scaling = runtime::RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 64,
    };
    let (cos, sin) =
        runtime::rope_tables(head_dim, 500000.0, &scaling, max_pos, &Device::Cpu).unwrap();
    let (cd, sd) = (
        up(g, &cos.to_vec::<f32>().unwrap()),
        up(g, &sin.to_vec::<f32>().unwrap()),
    );
    let pos: Vec<i32> = (0..tokens)
        .map(|_| rng.below(max_pos as u64) as i32)
        .collect();
    let (pc, pd) = ids_pair(g, &pos, &[tokens]);
    let shape = [tokens, heads, head_dim];
    let x = uniform(rng, tokens * heads * head_dim, 1.0);
    for inverse in [false, true] {
        let (mut xc, mut xd) = pair::<E>(g, &x, &shape);
        if inverse {
            ops::rope_bwd(&mut xc, &cos, &sin, &pc).unwrap();
        } else {
            ops::rope_fwd(&mut xc, &cos, &sin, &pc).unwrap();
        }
        kernels::rope::rope(g, &mut xd, &pd, &cd, &sd, tokens, heads, head_dim, inverse).unwrap();
        assert_close(
            &format!("rope inverse={inverse}"),
            &down(g, &xd),
            &cpu(&xc),
            E::TOL,
        );
    }
}

#[test]
fn rope_matches_cpu_and_flags_bad_positions() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("rope");
    for (tokens, heads, hd) in [(1, 1, 2), (13, 3, 64), (40, 8, 128)] {
        rope_case::<f32>(&g, &mut rng, tokens, heads, hd);
        rope_case::<bf16>(&g, &mut rng, tokens, heads, hd);
    }
    let (cos, sin) = (up(&g, &[1f32; 16]), up(&g, &[0f32; 16]));
    let mut x = up(&g, &uniform(&mut rng, 16, 1.0));
    let pos = up(&g, &[1i32, 4]);
    kernels::rope::rope(&g, &mut x, &pos, &cos, &sin, 2, 1, 8, false).unwrap();
    let y = down(&g, &x);
    assert!(y[..8].iter().all(|v| v.is_finite()) && y[8..].iter().all(|v| v.is_nan()));
}

fn swiglu_case<E: Host>(g: &Gpu, rng: &mut Rng, n: usize) {
    let (gc, gd) = pair::<E>(g, &uniform(rng, n, 4.0), &[n]);
    let (uc, ud) = pair::<E>(g, &uniform(rng, n, 2.0), &[n]);
    let (dhc, dhd) = pair::<E>(g, &uniform(rng, n, 1.0), &[n]);
    let mut hc = cpu_zeros::<E>(&[n]);
    ops::swiglu_fwd(&mut hc, &gc, &uc).unwrap();
    let (mut dgc, mut duc) = (cpu_zeros::<E>(&[n]), cpu_zeros::<E>(&[n]));
    ops::swiglu_bwd(&mut dgc, &mut duc, &dhc, &gc, &uc).unwrap();
    let mut h = poisoned::<E>(g, n);
    let (mut dg, mut du) = (poisoned::<E>(g, n), poisoned::<E>(g, n));
    kernels::swiglu::swiglu_fwd(g, &gd, &ud, &mut h, n).unwrap();
    kernels::swiglu::swiglu_bwd(g, &gd, &ud, &dhd, &mut dg, &mut du, n).unwrap();
    assert_close("swiglu h", &down(g, &h), &cpu(&hc), E::TOL);
    assert_close("swiglu dgate", &down(g, &dg), &cpu(&dgc), E::TOL);
    assert_close("swiglu dup", &down(g, &du), &cpu(&duc), E::TOL);
}

#[test]
fn swiglu_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("swiglu");
    for n in [1, 127, 10007, 300_001] {
        swiglu_case::<f32>(&g, &mut rng, n);
        swiglu_case::<bf16>(&g, &mut rng, n);
    }
}

fn embedding_case<E: Host>(g: &Gpu, rng: &mut Rng, n: usize, vocab: usize, d: usize) {
    let ids: Vec<i32> = (0..n).map(|_| rng.below(vocab as u64) as i32).collect();
    let (ic, idd) = ids_pair(g, &ids, &[n]);
    let (tc, td) = pair::<E>(g, &uniform(rng, vocab * d, 1.0), &[vocab, d]);
    let (gc, gd) = pair::<E>(g, &uniform(rng, n * d, 1.0), &[n, d]);
    let mut oc = cpu_zeros::<E>(&[n, d]);
    ops::embedding_fwd(&mut oc, &ic, &tc).unwrap();
    let mut out = poisoned::<E>(g, n * d);
    kernels::embedding::embedding_fwd(g, &idd, &td, &mut out, n, vocab, d).unwrap();
    assert_close("embedding fwd", &down(g, &out), &cpu(&oc), 0.0);
    // The gradient accumulates: start both from the same random prior.
    let (mut dtc, mut dtd) = pair::<f32>(g, &uniform(rng, vocab * d, 1.0), &[vocab, d]);
    ops::embedding_bwd(&mut dtc, &gc, &ic).unwrap();
    kernels::embedding::embedding_bwd(g, &idd, &gd, &mut dtd, n, vocab, d).unwrap();
    assert_close("embedding bwd", &down(g, &dtd), &cpu(&dtc), 1e-5);
}

#[test]
fn embedding_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("embedding");
    for (n, vocab, d) in [(1, 1, 1), (77, 50, 33), (512, 1000, 256)] {
        embedding_case::<f32>(&g, &mut rng, n, vocab, d);
        embedding_case::<bf16>(&g, &mut rng, n, vocab, d);
    }
}

fn logprobs_case<E: Host>(g: &Gpu, rng: &mut Rng, rows: usize, vocab: usize, temperature: f32) {
    use kernels::logprobs::*;
    let ignore = Some(-100i64);
    let spec = LogprobSpec {
        rows,
        vocab,
        ignore_index: ignore,
        temperature,
    };
    let (lc, ld) = pair::<E>(g, &uniform(rng, rows * vocab, 8.0), &[rows, vocab]);
    let targets: Vec<i32> = (0..rows)
        .map(|r| {
            if r % 4 == 3 {
                -100
            } else {
                rng.below(vocab as u64) as i32
            }
        })
        .collect();
    let (tc, td) = ids_pair(g, &targets, &[rows]);
    let (gc, gd) = pair::<f32>(g, &uniform(rng, rows, 1.0), &[rows]);
    let (mut lpc, mut lsec) = (cpu_zeros::<f32>(&[rows]), cpu_zeros::<f32>(&[rows]));
    ops::token_logprobs_fwd(&mut lpc, &mut lsec, &lc, &tc, temperature, ignore).unwrap();
    let mut dlc = cpu_zeros::<E>(&[rows, vocab]);
    ops::token_logprobs_bwd(&mut dlc, &gc, &lc, &lsec, &tc, temperature, ignore).unwrap();
    let (mut lp, mut lse) = (poisoned::<f32>(g, rows), poisoned::<f32>(g, rows));
    logprobs_fwd(g, &spec, &ld, &td, &mut lp, &mut lse).unwrap();
    let mut dl = poisoned::<E>(g, rows * vocab);
    logprobs_bwd(g, &spec, &ld, &td, &lse, Some(&gd), 1.0, &mut dl).unwrap();
    let mut inplace = ld.clone();
    logprobs_bwd_inplace(g, &spec, &mut inplace, &td, &lse, Some(&gd), 1.0).unwrap();
    assert_close("logp", &down(g, &lp), &cpu(&lpc), 1e-5);
    assert_close("lse", &down(g, &lse), &cpu(&lsec), 1e-5);
    assert_close("dlogits", &down(g, &dl), &cpu(&dlc), E::TOL);
    assert_close("dlogits in place", &down(g, &inplace), &cpu(&dlc), E::TOL);

    // Cross-entropy = the same kernels with g = None and scale = -1/count.
    let mut losses = cpu_zeros::<f32>(&[rows]);
    let stats = ops::cross_entropy_fwd(&mut losses, &mut lsec, &lc, &tc, -100).unwrap();
    let scale = 1.0 / stats.count.max(1) as f32;
    let mut dce = cpu_zeros::<E>(&[rows, vocab]);
    ops::cross_entropy_bwd(&mut dce, &lc, &lsec, &tc, -100, scale, None).unwrap();
    let spec1 = LogprobSpec {
        temperature: 1.0,
        ..spec
    };
    logprobs_fwd(g, &spec1, &ld, &td, &mut lp, &mut lse).unwrap();
    let neg: Vec<f64> = down(g, &lp).iter().map(|v| -v).collect();
    assert_close("cross-entropy losses", &neg, &cpu(&losses), 1e-5);
    let mut dl = poisoned::<E>(g, rows * vocab);
    logprobs_bwd(g, &spec1, &ld, &td, &lse, None, -scale, &mut dl).unwrap();
    assert_close("cross-entropy dlogits", &down(g, &dl), &cpu(&dce), E::TOL);

    let mut sc = cpu_zeros::<E>(&[rows, vocab]);
    ops::softmax(&mut sc, &lc, temperature).unwrap();
    let mut sd = poisoned::<E>(g, rows * vocab);
    softmax(g, &ld, &mut sd, rows, vocab, temperature).unwrap();
    assert_close("softmax", &down(g, &sd), &cpu(&sc), E::TOL);
}

#[test]
fn logprobs_cross_entropy_softmax_match_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("logprobs");
    for (rows, vocab, temp) in [(1, 2, 1.0), (9, 3001, 0.7), (16, 128_256, 1.0)] {
        logprobs_case::<f32>(&g, &mut rng, rows, vocab, temp);
        logprobs_case::<bf16>(&g, &mut rng, rows, vocab, temp);
    }
}

fn cast_case<I: Host, O: Host>(g: &Gpu, x: &[f32]) {
    let n = x.len();
    let (xc, xd) = pair::<I>(g, x, &[n]);
    let want = xc.cast(O::DTYPE).unwrap();
    let mut y = poisoned::<O>(g, n);
    kernels::cast::cast(g, &xd, &mut y, n).unwrap();
    assert_close(
        &format!("cast {} -> {}", I::SUFFIX, O::SUFFIX),
        &down(g, &y),
        &cpu(&want),
        0.0,
    );
}

#[test]
fn casts_match_cpu_bit_for_bit() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("cast");
    let n = 100_003;
    // Magnitudes from ~1e-30 to 1e3: normal, subnormal (f16) and overflowing (f16) values.
    let x: Vec<f32> = (0..n)
        .map(|_| (rng.next_f32() * 2.0 - 1.0) * 1000.0 * rng.next_f32().powi(12))
        .collect();
    cast_case::<f32, bf16>(&g, &x);
    cast_case::<bf16, f32>(&g, &x);
    cast_case::<f32, f16>(&g, &x);
    cast_case::<f16, f32>(&g, &x);
    cast_case::<bf16, f16>(&g, &x);
    cast_case::<f16, bf16>(&g, &x);
    let idx: Vec<i64> = vec![0, 5, -3, i64::MAX, 1 << 40, 2_147_483_647];
    let xd = up(&g, &idx);
    let mut y = up(&g, &vec![7i32; idx.len()]);
    kernels::cast::cast(&g, &xd, &mut y, idx.len()).unwrap();
    g.synchronize().unwrap();
    let got: Vec<i32> = g.stream().clone_dtoh(&y).unwrap();
    assert_eq!(got, vec![0, 5, -3, -1, -1, 2_147_483_647]);
    let e = kernels::cast::cast(&g, &up(&g, &x), &mut poisoned::<f32>(&g, n), n)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cast"), "{e}");
}

#[test]
fn sums_and_global_norm_match_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("reduce");
    let lens = [1usize, 255, 257, 70_001, 1_000_000];
    let xs: Vec<_> = lens
        .iter()
        .map(|&n| pair::<f32>(&g, &uniform(&mut rng, n, 1.0), &[n]))
        .collect();
    let mut scratch = poisoned::<f32>(&g, kernels::reduce::scratch_len(&lens));
    for ((xc, xd), &n) in xs.iter().zip(&lens) {
        let mut out = poisoned::<f32>(&g, 1);
        kernels::reduce::sum(&g, xd, n, &mut scratch, &mut out).unwrap();
        let want = ops::sum(xc).unwrap();
        // A sum of signed values can cancel: compare against the sum of magnitudes.
        let scale: f64 = cpu(xc).iter().map(|v| v.abs()).sum();
        let got = down(&g, &out)[0];
        assert!(
            (got - want).abs() <= 1e-5 * scale,
            "sum of {n}: {got} vs {want}"
        );
    }
    let refs: Vec<&dyn kernels::cudarc::driver::DevicePtr<f32>> =
        xs.iter().map(|(_, d)| d as _).collect();
    let mut out = poisoned::<f32>(&g, 1);
    kernels::reduce::global_norm(&g, &refs, &mut scratch, &mut out).unwrap();
    let want = ops::global_l2_norm(&xs.iter().map(|(c, _)| c).collect::<Vec<_>>()).unwrap();
    assert_close("global norm", &down(&g, &out), &[want], 1e-5);
    let (bc, bd) = pair::<bf16>(&g, &uniform(&mut rng, 4097, 1.0), &[4097]);
    let bref: [&dyn kernels::cudarc::driver::DevicePtr<bf16>; 1] = [&bd];
    kernels::reduce::global_norm(&g, &bref, &mut scratch, &mut out).unwrap();
    assert_close(
        "global norm bf16",
        &down(&g, &out),
        &[ops::sum_squares(&bc).unwrap().sqrt()],
        1e-5,
    );
}

#[test]
fn elementwise_ops_match_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("elementwise");
    fn case<E: Host>(g: &Gpu, rng: &mut Rng, n: usize) {
        use kernels::elementwise as ew;
        let (ac, ad) = pair::<E>(g, &uniform(rng, n, 3.0), &[n]);
        let (bc, bd) = pair::<E>(g, &uniform(rng, n, 3.0), &[n]);
        let mut oc = cpu_zeros::<E>(&[n]);
        let mut o = poisoned::<E>(g, n);
        ops::add(&mut oc, &ac, &bc).unwrap();
        ew::add(g, &ad, &bd, &mut o, n).unwrap();
        assert_close("add", &down(g, &o), &cpu(&oc), E::TOL);
        ops::mul(&mut oc, &ac, &bc).unwrap();
        ew::mul_elem(g, &ad, &bd, &mut o, n).unwrap();
        assert_close("mul", &down(g, &o), &cpu(&oc), E::TOL);
        ops::scale(&mut oc, &ac, -0.37).unwrap();
        ew::scale(g, &ad, &mut o, -0.37, n).unwrap();
        assert_close("scale", &down(g, &o), &cpu(&oc), E::TOL);
        ops::scale_inplace(&mut oc, 3.5).unwrap();
        ew::scale_inplace(g, &mut o, 3.5, n).unwrap();
        assert_close("scale in place", &down(g, &o), &cpu(&oc), E::TOL);
        ops::axpy(&mut oc, 0.25, &bc).unwrap();
        ew::axpy(g, &mut o, 0.25, &bd, n).unwrap();
        assert_close("axpy", &down(g, &o), &cpu(&oc), E::TOL);
    }
    for n in [1, 1000, 65_537] {
        case::<f32>(&g, &mut rng, n);
        case::<bf16>(&g, &mut rng, n);
        case::<f16>(&g, &mut rng, n);
    }
    // KV-cache rows land at per-sequence starts.
    let (b, t, s_max, hkv, d) = (3, 2, 7, 2, 16);
    let (mut cc, mut cd) = pair::<bf16>(
        &g,
        &uniform(&mut rng, b * s_max * hkv * d, 1.0),
        &[b, s_max, hkv, d],
    );
    let (nc, nd) = pair::<bf16>(
        &g,
        &uniform(&mut rng, b * t * hkv * d, 1.0),
        &[b, t, hkv, d],
    );
    let (sc, sd) = ids_pair(&g, &[0, 3, 5], &[b]);
    ops::kv_cache_write(&mut cc, &nc, &sc).unwrap();
    kernels::elementwise::kv_cache_write(&g, &mut cd, &nd, &sd, b, t, s_max, hkv * d).unwrap();
    assert_close("kv_cache_write", &down(&g, &cd), &cpu(&cc), 0.0);
}

#[test]
fn adamw_matches_cpu() {
    use kernels::adamw::*;
    use kernels::cudarc::driver::DevicePtr;
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("adamw");
    let hp = runtime::AdamWParams {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        step: 3,
        grad_scale: 0.5,
    };
    let h = AdamwHyper {
        lr: hp.lr,
        beta1: hp.beta1,
        beta2: hp.beta2,
        eps: hp.eps,
        weight_decay: hp.weight_decay,
        step: hp.step,
        grad_scale: hp.grad_scale,
    };
    let lens = [5000usize, 4097, 1, 8192];
    let mut cpu_state = Vec::new();
    let mut dev = Vec::new();
    for &n in &lens {
        let (pc, pd) = pair::<f32>(&g, &uniform(&mut rng, n, 1.0), &[n]);
        let (gc, gd) = pair::<f32>(&g, &uniform(&mut rng, n, 0.1), &[n]);
        let (mc, md) = pair::<f32>(&g, &uniform(&mut rng, n, 0.01), &[n]);
        let v: Vec<f32> = (0..n).map(|_| rng.next_f32() * 0.01).collect();
        let (vc, vd) = pair::<f32>(&g, &v, &[n]);
        cpu_state.push([pc, gc, mc, vc]);
        dev.push([pd, gd, md, vd]);
    }
    for [p, gr, m, v] in cpu_state.iter_mut() {
        let mut copy = cpu_zeros::<bf16>(&[p.numel()]);
        ops::adamw_step(p, gr, m, v, Some(&mut copy), &hp).unwrap();
    }
    // Single-tensor launches on the first half of the state, one group launch on a copy of all.
    let copies: Vec<_> = lens.iter().map(|&n| poisoned::<bf16>(&g, n)).collect();
    let s = g.stream().clone();
    let specs: Vec<AdamwTensor> = dev
        .iter()
        .zip(&copies)
        .zip(&lens)
        .map(|((d, c), &len)| AdamwTensor {
            param: d[0].device_ptr(&s).0,
            grad: d[1].device_ptr(&s).0,
            m: d[2].device_ptr(&s).0,
            v: d[3].device_ptr(&s).0,
            param_bf16: Some(c.device_ptr(&s).0),
            len,
        })
        .collect();
    let mut single: Vec<[_; 4]> = dev.to_vec();
    // SAFETY: every buffer above lives until the end of the test.
    let group = unsafe { AdamwGroup::new(&g, &specs) }.unwrap();
    group.step(&g, &h).unwrap();
    for (i, c) in cpu_state.iter().enumerate() {
        assert_close(
            "adamw_multi param",
            &down(&g, &dev[i][0]),
            &cpu(&c[0]),
            1e-5,
        );
        assert_close("adamw_multi m", &down(&g, &dev[i][2]), &cpu(&c[2]), 1e-5);
        assert_close("adamw_multi v", &down(&g, &dev[i][3]), &cpu(&c[3]), 1e-5);
        assert_close(
            "adamw_multi bf16 copy",
            &down(&g, &copies[i]),
            &cpu(&c[0]),
            1e-2,
        );
        let [p, gr, m, v] = &mut single[i];
        let mut copy = poisoned::<f32>(&g, lens[i]);
        adamw::<f32>(&g, &h, p, &*gr, m, v, Some(&mut copy), lens[i]).unwrap();
        assert_close("adamw param", &down(&g, p), &cpu(&c[0]), 1e-5);
        assert_close("adamw copy", &down(&g, &copy), &cpu(&c[0]), 1e-5);
    }
}

#[test]
fn caching_allocator_reuses_blocks_across_steps() {
    use kernels::alloc::CachingAllocator;
    let Some(g) = gpu() else { return };
    let a = CachingAllocator::new(&g);
    let sizes = [1000usize, 4096, 3 << 20, 100];
    // A "step": allocate, write through a typed view, read back, free.
    let step = |k: f32| {
        let mut blocks: Vec<_> = sizes
            .iter()
            .map(|&n| a.alloc_elems::<f32>(n).unwrap())
            .collect();
        for (b, &n) in blocks.iter_mut().zip(&sizes) {
            let host: Vec<f32> = (0..n).map(|i| i as f32 * k).collect();
            // SAFETY: written before it is read.
            let mut v = unsafe { b.view_mut::<f32>(n) }.unwrap();
            g.stream().memcpy_htod(&host, &mut v).unwrap();
            let back: Vec<f32> = g.stream().clone_dtoh(&v).unwrap();
            assert_eq!(back, host);
        }
    };
    step(1.0);
    let first = a.stats();
    assert_eq!(first.driver_allocs, sizes.len() as u64);
    assert_eq!(first.in_use_bytes, 0);
    for k in 2..5 {
        step(k as f32);
    }
    let later = a.stats();
    assert_eq!(
        later.driver_allocs, first.driver_allocs,
        "no driver allocation after the first step"
    );
    assert_eq!(later.reuses, 3 * sizes.len() as u64);
    let b = a.alloc(10).unwrap();
    // SAFETY: only the length check is exercised.
    assert!(
        unsafe { b.view::<f32>(1000) }.is_err(),
        "a view larger than the block is an error"
    );
    drop(b);
    a.empty_cache();
    assert_eq!(a.stats().reserved_bytes, 0);
}
