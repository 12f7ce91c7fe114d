//! Every elementwise / norm / loss / optimizer kernel against a plain-loop f64 CPU twin on fresh
//! random inputs, outputs poisoned with NaN first. Skips (with a printed reason) without a GPU.
#![cfg(feature = "cuda")]
// Reference loops index several arrays by the same counters; iterators would hide the math.
#![allow(clippy::needless_range_loop)]

mod common;

use common::*;
use half::bf16;
use kernels::rope_tables::{rope_tables, Llama3Scaling};
use kernels::Gpu;

fn rmsnorm_case<E: Host>(g: &Gpu, rng: &mut Rng, rows: usize, d: usize) {
    let eps = 1e-5f32;
    let (x, xf) = rounded::<E>(&rng.vec(rows * d, 2.0));
    let (w, wf) = rounded::<E>(&rng.vec(d, 1.5));
    let (dy, dyf) = rounded::<E>(&rng.vec(rows * d, 1.0));
    let (xd, wd, dyd) = (up(g, &x), up(g, &w), up(g, &dy));
    let mut y = poisoned::<E>(g, rows * d);
    let mut rstd = poisoned_f32(g, rows);
    kernels::rmsnorm::rmsnorm_fwd(g, &xd, &wd, &mut y, &mut rstd, rows, d, eps).unwrap();
    let mut dx = poisoned::<E>(g, rows * d);
    let mut dw = poisoned_f32(g, d);
    kernels::rmsnorm::rmsnorm_bwd(g, &xd, &wd, &rstd, &dyd, &mut dx, &mut dw, rows, d).unwrap();

    let (mut ry, mut rr, mut rdx, mut rdw) = (
        vec![0.0; rows * d],
        vec![0.0; rows],
        vec![0.0; rows * d],
        vec![0.0; d],
    );
    for r in 0..rows {
        let xr = &xf[r * d..(r + 1) * d];
        let rs = 1.0 / (xr.iter().map(|v| v * v).sum::<f64>() / d as f64 + eps as f64).sqrt();
        rr[r] = rs;
        let c: f64 = (0..d)
            .map(|i| wf[i] * dyf[r * d + i] * xr[i] * rs)
            .sum::<f64>()
            / d as f64;
        for i in 0..d {
            ry[r * d + i] = xr[i] * rs * wf[i];
            rdx[r * d + i] = rs * (wf[i] * dyf[r * d + i] - xr[i] * rs * c);
            rdw[i] += dyf[r * d + i] * xr[i] * rs;
        }
    }
    assert_close("rmsnorm y", &down(g, &y), &ry, E::TOL);
    assert_close("rmsnorm rstd", &down(g, &rstd), &rr, 1e-5);
    assert_close("rmsnorm dx", &down(g, &dx), &rdx, E::TOL);
    assert_close("rmsnorm dw", &down(g, &dw), &rdw, 1e-5);
}

#[test]
fn rmsnorm_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("rmsnorm");
    for (rows, d) in [(1, 1), (7, 33), (33, 1000), (5, 4096)] {
        rmsnorm_case::<f32>(&g, &mut rng, rows, d);
        rmsnorm_case::<bf16>(&g, &mut rng, rows, d);
    }
}

fn rope_case<E: Host>(g: &Gpu, rng: &mut Rng, tokens: usize, heads: usize, head_dim: usize) {
    let max_pos = 300;
    let scaling = Llama3Scaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 64,
    };
    let t = rope_tables(head_dim, 500000.0, Some(&scaling), max_pos).unwrap();
    let dt = kernels::rope::DeviceRopeTables::upload(g, &t).unwrap();
    let pos: Vec<i32> = (0..tokens).map(|_| rng.below(max_pos) as i32).collect();
    let n = tokens * heads * head_dim;
    let (x, xf) = rounded::<E>(&rng.vec(n, 1.0));
    let (xd, pd) = (up(g, &x), up(g, &pos));
    let mut y = poisoned::<E>(g, n);
    kernels::rope::rope_fwd(g, &xd, &mut y, &pd, &dt, tokens, heads).unwrap();
    let mut dx = poisoned::<E>(g, n);
    kernels::rope::rope_bwd(g, &xd, &mut dx, &pd, &dt, tokens, heads).unwrap();
    let half = head_dim / 2;
    let (mut ry, mut rdx) = (vec![0.0; n], vec![0.0; n]);
    for tok in 0..tokens {
        for h in 0..heads {
            let base = (tok * heads + h) * head_dim;
            for j in 0..half {
                let c = t.cos[pos[tok] as usize * half + j] as f64;
                let s = t.sin[pos[tok] as usize * half + j] as f64;
                let (a, b) = (xf[base + j], xf[base + j + half]);
                ry[base + j] = a * c - b * s;
                ry[base + j + half] = b * c + a * s;
                rdx[base + j] = a * c + b * s;
                rdx[base + j + half] = b * c - a * s;
            }
        }
    }
    assert_close("rope fwd", &down(g, &y), &ry, E::TOL);
    assert_close("rope bwd", &down(g, &dx), &rdx, E::TOL);
    let mut xi = up(g, &x);
    kernels::rope::rope_inplace(g, &mut xi, &pd, &dt, tokens, heads, false).unwrap();
    assert_close("rope in place", &down(g, &xi), &ry, E::TOL);
}

#[test]
fn rope_matches_cpu_and_flags_bad_positions() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("rope");
    for (tokens, heads, hd) in [(1, 1, 2), (13, 3, 64), (40, 8, 128)] {
        rope_case::<f32>(&g, &mut rng, tokens, heads, hd);
        rope_case::<bf16>(&g, &mut rng, tokens, heads, hd);
    }
    let t = rope_tables(8, 10000.0, None, 4).unwrap();
    let dt = kernels::rope::DeviceRopeTables::upload(&g, &t).unwrap();
    let x = up(&g, &rng.vec(16, 1.0));
    let pos = up(&g, &[1i32, 4]);
    let mut y = up(&g, &[0f32; 16]);
    kernels::rope::rope_fwd(&g, &x, &mut y, &pos, &dt, 2, 1).unwrap();
    let y = down(&g, &y);
    assert!(y[..8].iter().all(|v| v.is_finite()) && y[8..].iter().all(|v| v.is_nan()));
}

fn swiglu_case<E: Host>(g: &Gpu, rng: &mut Rng, n: usize) {
    let (ga, gf) = rounded::<E>(&rng.vec(n, 4.0));
    let (u, uf) = rounded::<E>(&rng.vec(n, 2.0));
    let (dh, dhf) = rounded::<E>(&rng.vec(n, 1.0));
    let (gd, ud, dhd) = (up(g, &ga), up(g, &u), up(g, &dh));
    let mut h = poisoned::<E>(g, n);
    let (mut dg, mut du) = (poisoned::<E>(g, n), poisoned::<E>(g, n));
    kernels::swiglu::swiglu_fwd(g, &gd, &ud, &mut h, n).unwrap();
    kernels::swiglu::swiglu_bwd(g, &gd, &ud, &dhd, &mut dg, &mut du, n).unwrap();
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let rh: Vec<f64> = (0..n).map(|i| gf[i] * sig(gf[i]) * uf[i]).collect();
    let rdg: Vec<f64> = (0..n)
        .map(|i| {
            let s = sig(gf[i]);
            dhf[i] * uf[i] * s * (1.0 + gf[i] * (1.0 - s))
        })
        .collect();
    let rdu: Vec<f64> = (0..n).map(|i| dhf[i] * gf[i] * sig(gf[i])).collect();
    assert_close("swiglu h", &down(g, &h), &rh, E::TOL);
    assert_close("swiglu dgate", &down(g, &dg), &rdg, E::TOL);
    assert_close("swiglu dup", &down(g, &du), &rdu, E::TOL);
}

#[test]
fn swiglu_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("swiglu");
    for n in [1, 127, 10007, 300_001] {
        swiglu_case::<f32>(&g, &mut rng, n);
        swiglu_case::<bf16>(&g, &mut rng, n);
    }
}

fn embedding_case<E: Host>(g: &Gpu, rng: &mut Rng, n: usize, vocab: usize, d: usize) {
    let ids: Vec<i32> = (0..n).map(|_| rng.below(vocab) as i32).collect();
    let (t, tf) = rounded::<E>(&rng.vec(vocab * d, 1.0));
    let (dout, df) = rounded::<E>(&rng.vec(n * d, 1.0));
    let prior = rng.vec(vocab * d, 1.0);
    let (idd, td, dd) = (up(g, &ids), up(g, &t), up(g, &dout));
    let mut out = poisoned::<E>(g, n * d);
    kernels::embedding::embedding_fwd(g, &idd, &td, &mut out, n, vocab, d).unwrap();
    let mut dt = up(g, &prior);
    kernels::embedding::embedding_bwd(g, &idd, &dd, &mut dt, n, vocab, d).unwrap();
    let mut rout = vec![0.0; n * d];
    let mut rdt: Vec<f64> = prior.iter().map(|&v| v as f64).collect();
    for (i, &id) in ids.iter().enumerate() {
        for k in 0..d {
            rout[i * d + k] = tf[id as usize * d + k];
            rdt[id as usize * d + k] += df[i * d + k];
        }
    }
    assert_close("embedding fwd", &down(g, &out), &rout, 0.0);
    assert_close("embedding bwd", &down(g, &dt), &rdt, 1e-5);
}

#[test]
fn embedding_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("embedding");
    for (n, vocab, d) in [(1, 1, 1), (77, 50, 33), (512, 1000, 256)] {
        embedding_case::<f32>(&g, &mut rng, n, vocab, d);
        embedding_case::<bf16>(&g, &mut rng, n, vocab, d);
    }
}

fn xent_case<E: Host>(g: &Gpu, rng: &mut Rng, rows: usize, vocab: usize, temperature: f32) {
    use kernels::cross_entropy::*;
    let spec = LogprobSpec {
        rows,
        vocab,
        ignore_index: -100,
        temperature,
    };
    let (l, lf) = rounded::<E>(&rng.vec(rows * vocab, 8.0));
    let targets: Vec<i32> = (0..rows)
        .map(|r| {
            if r % 4 == 3 {
                -100
            } else {
                rng.below(vocab) as i32
            }
        })
        .collect();
    let gr = rng.vec(rows, 1.0);
    let (ld, td, gd) = (up(g, &l), up(g, &targets), up(g, &gr));
    let (mut lp, mut lse) = (poisoned_f32(g, rows), poisoned_f32(g, rows));
    cross_entropy_fwd(g, &spec, &ld, &td, &mut lp, &mut lse).unwrap();
    let mut dl = poisoned::<E>(g, rows * vocab);
    cross_entropy_bwd(g, &spec, &ld, &td, &lse, &gd, &mut dl).unwrap();
    let mut inplace = up(g, &l);
    cross_entropy_bwd_inplace(g, &spec, &mut inplace, &td, &lse, &gd).unwrap();

    let t = temperature as f64;
    let (mut rlp, mut rlse, mut rdl) = (vec![0.0; rows], vec![0.0; rows], vec![0.0; rows * vocab]);
    for r in 0..rows {
        let z: Vec<f64> = lf[r * vocab..(r + 1) * vocab]
            .iter()
            .map(|v| v / t)
            .collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let l = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        rlse[r] = l;
        let tg = targets[r];
        if tg == -100 {
            continue;
        }
        rlp[r] = z[tg as usize] - l;
        for j in 0..vocab {
            let onehot = if j == tg as usize { 1.0 } else { 0.0 };
            rdl[r * vocab + j] = gr[r] as f64 / t * (onehot - (z[j] - l).exp());
        }
    }
    assert_close("logprob", &down(g, &lp), &rlp, 1e-5);
    assert_close("lse", &down(g, &lse), &rlse, 1e-5);
    assert_close("dlogits", &down(g, &dl), &rdl, E::TOL);
    assert_close("dlogits in place", &down(g, &inplace), &rdl, E::TOL);
}

#[test]
fn cross_entropy_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("cross_entropy");
    for (rows, vocab, temp) in [(1, 2, 1.0), (9, 3001, 0.7), (16, 128_256, 1.0)] {
        xent_case::<f32>(&g, &mut rng, rows, vocab, temp);
        xent_case::<bf16>(&g, &mut rng, rows, vocab, temp);
    }
}

#[test]
fn casts_round_to_nearest_even_like_half() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("cast");
    let n = 100_003;
    let x: Vec<f32> = (0..n)
        .map(|_| rng.sym(1000.0) * rng.unit().powi(8))
        .collect();
    let xd = up(&g, &x);
    let mut b = up(&g, &vec![bf16::NAN; n]);
    kernels::cast::cast(&g, &xd, &mut b, n).unwrap();
    g.synchronize().unwrap();
    let got: Vec<bf16> = g.stream().clone_dtoh(&b).unwrap();
    assert!(got
        .iter()
        .zip(&x)
        .all(|(a, &v)| a.to_bits() == bf16::from_f32(v).to_bits()));
    let mut h = up(&g, &vec![half::f16::NAN; n]);
    kernels::cast::cast(&g, &xd, &mut h, n).unwrap();
    g.synchronize().unwrap();
    let goth: Vec<half::f16> = g.stream().clone_dtoh(&h).unwrap();
    assert!(goth
        .iter()
        .zip(&x)
        .all(|(a, &v)| a.to_bits() == half::f16::from_f32(v).to_bits()));
    let mut back = poisoned_f32(&g, n);
    kernels::cast::cast(&g, &b, &mut back, n).unwrap();
    let want: Vec<f64> = got.iter().map(|v| v.to_f64()).collect();
    assert_close("bf16 -> f32", &down(&g, &back), &want, 0.0);
    let mut hb = up(&g, &vec![bf16::NAN; n]);
    kernels::cast::cast(&g, &h, &mut hb, n).unwrap();
    g.synchronize().unwrap();
    let gothb: Vec<bf16> = g.stream().clone_dtoh(&hb).unwrap();
    assert!(gothb
        .iter()
        .zip(&goth)
        .all(|(a, v)| a.to_bits() == bf16::from_f32(v.to_f32()).to_bits()));
    assert!(
        kernels::cast::cast(&g, &xd, &mut back, n).is_err(),
        "f32 -> f32 is not a cast"
    );
}

#[test]
fn sums_and_global_norm_match_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("reduce");
    let lens = [1usize, 255, 257, 70_001, 1_000_000];
    let xs: Vec<Vec<f32>> = lens.iter().map(|&n| rng.vec(n, 1.0)).collect();
    let ds: Vec<_> = xs.iter().map(|x| up(&g, x)).collect();
    let mut scratch = poisoned_f32(&g, kernels::reduce::scratch_len(&lens));
    for (x, d) in xs.iter().zip(&ds) {
        let mut out = poisoned_f32(&g, 1);
        kernels::reduce::sum(&g, d, x.len(), &mut scratch, &mut out).unwrap();
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        // A sum of signed values can cancel: compare against the sum of magnitudes.
        let scale: f64 = x.iter().map(|&v| (v as f64).abs()).sum();
        let got = down(&g, &out)[0];
        assert!((got - want).abs() <= 1e-5 * scale, "sum {got} vs {want}");
    }
    let refs: Vec<&dyn kernels::cudarc::driver::DevicePtr<f32>> =
        ds.iter().map(|d| d as _).collect();
    let mut out = poisoned_f32(&g, 1);
    kernels::reduce::global_norm(&g, &refs, &mut scratch, &mut out).unwrap();
    let want: f64 = xs
        .iter()
        .flatten()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt();
    assert_close("global norm", &down(&g, &out), &[want], 1e-5);
}

#[test]
fn adamw_multi_tensor_matches_cpu() {
    use kernels::adamw::*;
    use kernels::cudarc::driver::DevicePtr;
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("adamw");
    let h = AdamwHyper {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let lens = [5000usize, 4097, 1, 8192];
    let host: Vec<[Vec<f32>; 4]> = lens
        .iter()
        .map(|&n| {
            let v: Vec<f32> = (0..n).map(|_| rng.unit() * 0.01).collect();
            [rng.vec(n, 1.0), rng.vec(n, 0.1), rng.vec(n, 0.01), v]
        })
        .collect();
    let dev: Vec<_> = host.iter().map(|t| t.clone().map(|v| up(&g, &v))).collect();
    let copies: Vec<_> = lens.iter().map(|&n| up(&g, &vec![bf16::NAN; n])).collect();
    let s = g.stream();
    let specs: Vec<AdamwTensor> = dev
        .iter()
        .zip(&copies)
        .zip(&lens)
        .map(|((d, c), &len)| AdamwTensor {
            param: d[0].device_ptr(s).0,
            grad: d[1].device_ptr(s).0,
            m: d[2].device_ptr(s).0,
            v: d[3].device_ptr(s).0,
            param_bf16: Some(c.device_ptr(s).0),
            len,
        })
        .collect();
    // SAFETY: every buffer above lives until the end of the test.
    let group = unsafe { AdamwGroup::new(&g, &specs) }.unwrap();
    let (step, scale) = (3u64, 0.5f32);
    group.step(&g, &h, step, scale).unwrap();
    let (b1, b2) = (h.beta1 as f64, h.beta2 as f64);
    let (bc1, bc2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
    for (i, t) in host.iter().enumerate() {
        let (mut rp, mut rm, mut rv) = (vec![], vec![], vec![]);
        for j in 0..lens[i] {
            let gr = t[1][j] as f64 * scale as f64;
            let m = b1 * t[2][j] as f64 + (1.0 - b1) * gr;
            let v = b2 * t[3][j] as f64 + (1.0 - b2) * gr * gr;
            let p = t[0][j] as f64 * (1.0 - h.lr as f64 * h.weight_decay as f64)
                - h.lr as f64 * (m / bc1) / ((v / bc2).sqrt() + h.eps as f64);
            rp.push(p);
            rm.push(m);
            rv.push(v);
        }
        assert_close("adamw param", &down(&g, &dev[i][0]), &rp, 1e-5);
        assert_close("adamw m", &down(&g, &dev[i][2]), &rm, 1e-5);
        assert_close("adamw v", &down(&g, &dev[i][3]), &rv, 1e-5);
        assert_close("adamw bf16 copy", &down(&g, &copies[i]), &rp, 1e-2);
    }
}
