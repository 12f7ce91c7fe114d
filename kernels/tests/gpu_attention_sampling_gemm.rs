//! Attention, sampling and the cuBLASLt GEMM against their CPU twins, the runtime's own ops, on
//! fresh random inputs with device outputs poisoned first. Skips (with a printed reason) without
//! a GPU.
#![cfg(feature = "cuda")]

mod common;

use common::*;
use half::bf16;
use kernels::attention::{attention_bwd, attention_fwd, AttnShape};
use kernels::cudarc::driver::DevicePtr;
use kernels::Gpu;
use runtime::{ops, Rng};

fn attention_case<E: Host>(g: &Gpu, rng: &mut Rng, a: AttnShape, masked: bool) {
    let (b, t, s, h, hk, d) = (
        a.batch,
        a.q_len,
        a.kv_len,
        a.n_heads,
        a.n_kv_heads,
        a.head_dim,
    );
    let (nq, nk, rows) = (b * t * h * d, b * s * hk * d, b * h * t);
    let (qc, qd) = pair::<E>(g, &uniform(rng, nq, 1.0), &[b, t, h, d]);
    let (kc, kd) = pair::<E>(g, &uniform(rng, nk, 1.0), &[b, s, hk, d]);
    let (vc, vd) = pair::<E>(g, &uniform(rng, nk, 1.0), &[b, s, hk, d]);
    let (doc, dod) = pair::<E>(g, &uniform(rng, nq, 1.0), &[b, t, h, d]);
    // Left padding on every sequence but the first: its first two keys are masked out.
    let mask: Vec<i32> = (0..b * s)
        .map(|i| (i / s == 0 || i % s >= 2) as i32)
        .collect();
    let (mc, md) = ids_pair(g, &mask, &[b, s]);
    let p = ops::AttentionParams {
        scale: a.scale,
        q_offset: a.q_offset,
    };
    let mref = masked.then_some(&mc);
    let (mut oc, mut lc) = (cpu_zeros::<E>(&[b, t, h, d]), cpu_zeros::<f32>(&[b, h, t]));
    ops::attention_fwd(&mut oc, Some(&mut lc), &qc, &kc, &vc, mref, &p).unwrap();
    let (mut dqc, mut dkc, mut dvc) = (
        cpu_zeros::<E>(&[b, t, h, d]),
        cpu_zeros::<E>(&[b, s, hk, d]),
        cpu_zeros::<E>(&[b, s, hk, d]),
    );
    ops::attention_bwd(
        &mut dqc, &mut dkc, &mut dvc, &doc, &qc, &kc, &vc, &oc, &lc, mref, &p,
    )
    .unwrap();

    let dmask: Option<&dyn DevicePtr<i32>> = if masked { Some(&md) } else { None };
    let mut out = poisoned::<E>(g, nq);
    let mut lse = poisoned::<f32>(g, rows);
    attention_fwd(g, &a, &qd, &kd, &vd, dmask, None, &mut out, Some(&mut lse)).unwrap();
    let mut delta = poisoned::<f32>(g, rows);
    let (mut dq, mut dk, mut dv) = (
        poisoned::<E>(g, nq),
        poisoned::<E>(g, nk),
        poisoned::<E>(g, nk),
    );
    attention_bwd(
        g, &a, &qd, &kd, &vd, dmask, None, &out, &dod, &lse, &mut delta, &mut dq, &mut dk, &mut dv,
    )
    .unwrap();
    let what = format!("attention {a:?} masked={masked} {}", E::SUFFIX);
    assert_close(&format!("{what} out"), &down(g, &out), &cpu(&oc), E::TOL);
    // Rows that see no key have lse = -inf on both sides; compare the finite ones.
    let (gl, rl): (Vec<f64>, Vec<f64>) = down(g, &lse)
        .into_iter()
        .zip(cpu(&lc))
        .map(|(x, y)| {
            if y.is_infinite() && x == y {
                (0.0, 0.0)
            } else {
                (x, y)
            }
        })
        .unzip();
    assert_close(&format!("{what} lse"), &gl, &rl, 1e-5);
    assert_close(&format!("{what} dq"), &down(g, &dq), &cpu(&dqc), E::TOL);
    assert_close(&format!("{what} dk"), &down(g, &dk), &cpu(&dkc), E::TOL);
    assert_close(&format!("{what} dv"), &down(g, &dv), &cpu(&dvc), E::TOL);
}

#[test]
fn attention_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("attention");
    let base = AttnShape {
        batch: 2,
        q_len: 5,
        kv_len: 5,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 64,
        q_offset: 0,
        scale: 0.125,
    };
    let prefill = AttnShape {
        q_len: 3,
        kv_len: 9,
        q_offset: 6,
        ..base
    };
    let odd = AttnShape {
        batch: 1,
        q_len: 33,
        kv_len: 33,
        n_heads: 3,
        n_kv_heads: 1,
        head_dim: 40,
        q_offset: 0,
        scale: 0.3,
    };
    let wide = AttnShape {
        batch: 1,
        q_len: 7,
        kv_len: 7,
        n_heads: 2,
        n_kv_heads: 2,
        head_dim: 256,
        q_offset: 0,
        scale: 0.0625,
    };
    for a in [base, prefill, odd, wide] {
        for masked in [false, true] {
            attention_case::<f32>(&g, &mut rng, a, masked);
            attention_case::<bf16>(&g, &mut rng, a, masked);
        }
    }
    let bad = AttnShape {
        n_kv_heads: 3,
        ..base
    };
    let x = up(&g, &[0f32; 4]);
    let mut o = up(&g, &[0f32; 4]);
    let e = attention_fwd(&g, &bad, &x, &x, &x, None, None, &mut o, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("attention_fwd") && e.contains("n_kv_heads"),
        "{e}"
    );
}

#[test]
fn attention_decode_with_fill_levels_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("attention_decode");
    let (b, t, s_max, h, hk, d) = (3, 2, 11, 4, 1, 32);
    let scale = 0.2;
    let (qc, qd) = pair::<bf16>(&g, &uniform(&mut rng, b * t * h * d, 1.0), &[b, t, h, d]);
    let (kc, kd) = pair::<bf16>(
        &g,
        &uniform(&mut rng, b * s_max * hk * d, 1.0),
        &[b, s_max, hk, d],
    );
    let (vc, vd) = pair::<bf16>(
        &g,
        &uniform(&mut rng, b * s_max * hk * d, 1.0),
        &[b, s_max, hk, d],
    );
    let (lc, ld) = ids_pair(&g, &[2, 7, 11], &[b]);
    let mut oc = cpu_zeros::<bf16>(&[b, t, h, d]);
    ops::attention_decode(&mut oc, &qc, &kc, &vc, &lc, scale).unwrap();
    let a = AttnShape {
        batch: b,
        q_len: t,
        kv_len: s_max,
        n_heads: h,
        n_kv_heads: hk,
        head_dim: d,
        q_offset: 0,
        scale,
    };
    let mut out = poisoned::<bf16>(&g, b * t * h * d);
    attention_fwd(&g, &a, &qd, &kd, &vd, None, Some(&ld), &mut out, None).unwrap();
    assert_close("attention_decode", &down(&g, &out), &cpu(&oc), 1e-2);
}

fn sampling_case<E: Host>(
    g: &Gpu,
    rng: &mut Rng,
    rows: usize,
    vocab: usize,
    spread: f32,
    p: runtime::SamplingParams,
) {
    use kernels::sampling::{sample, SamplingParams};
    let (lc, ld) = pair::<E>(g, &uniform(rng, rows * vocab, spread), &[rows, vocab]);
    let logits = lc.to_f32_vec().unwrap();
    // The GPU gets the very draws sample_token makes from the same stream (none when greedy).
    let mut draws = rng.clone();
    let u: Vec<f32> = (0..rows)
        .map(|_| {
            if p.temperature > 0.0 {
                draws.next_f64() as f32
            } else {
                0.0
            }
        })
        .collect();
    let want: Vec<usize> = logits
        .chunks(vocab)
        .map(|row| runtime::sample_token(row, &p, rng).unwrap())
        .collect();
    let ud = up(g, &u);
    let mut out = up(g, &vec![-1i32; rows]);
    let kp = SamplingParams {
        temperature: p.temperature,
        top_k: p.top_k,
        top_p: p.top_p,
    };
    sample(g, &kp, &ld, &ud, &mut out, rows, vocab).unwrap();
    g.synchronize().unwrap();
    let got: Vec<i32> = g.stream().clone_dtoh(&out).unwrap();
    let mismatches = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| **a as usize != **b)
        .count();
    if mismatches > 0 {
        eprintln!(
            "sampling {p:?} {}: {mismatches}/{rows} rows differ",
            E::SUFFIX
        );
    }
    // f32 running sums on the GPU vs f64 on the CPU may split a boundary differently in a rare
    // row; anything more is a semantic difference.
    assert!(
        mismatches * 50 <= rows,
        "{mismatches}/{rows} rows differ for {p:?}: gpu {got:?} cpu {want:?}"
    );
}

#[test]
fn sampling_matches_cpu() {
    use runtime::SamplingParams;
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("sampling");
    for p in [
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        },
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        },
        SamplingParams {
            temperature: 0.7,
            top_k: 40,
            top_p: 1.0,
        },
        SamplingParams {
            temperature: 1.3,
            top_k: 0,
            top_p: 0.9,
        },
        SamplingParams {
            temperature: 0.8,
            top_k: 50,
            top_p: 0.5,
        },
        SamplingParams {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
        },
    ] {
        sampling_case::<f32>(&g, &mut rng, 64, 3001, 6.0, p);
        sampling_case::<bf16>(&g, &mut rng, 64, 3001, 6.0, p);
    }
    let p = SamplingParams {
        temperature: 0.6,
        top_k: 0,
        top_p: 0.95,
    };
    sampling_case::<bf16>(&g, &mut rng, 4, 128_256, 6.0, p);
    // bf16 logits over a narrow range: many exact ties at the top-k / top-p boundaries.
    for p in [
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.3,
        },
        SamplingParams {
            temperature: 1.0,
            top_k: 20,
            top_p: 1.0,
        },
    ] {
        sampling_case::<bf16>(&g, &mut rng, 64, 500, 0.05, p);
    }
}

fn gemm_case<I: Host + kernels::gemm::GemmElem, O: Host + kernels::gemm::GemmElem>(
    g: &Gpu,
    gemm: &kernels::gemm::Gemm,
    rng: &mut Rng,
    (batch, m, n, k): (usize, usize, usize, usize),
    (ta, tb, shared_b): (bool, bool, bool),
) {
    let sa = if ta { [batch, k, m] } else { [batch, m, k] };
    let sb1 = if tb { [n, k] } else { [k, n] };
    let sb: Vec<usize> = if shared_b {
        sb1.to_vec()
    } else {
        [&[batch][..], &sb1[..]].concat()
    };
    let (ac, ad) = pair::<I>(g, &uniform(rng, batch * m * k, 1.0), &sa);
    let (bc, bd) = pair::<I>(g, &uniform(rng, sb.iter().product(), 1.0), &sb);
    let (mut cc, mut cd) = pair::<O>(g, &uniform(rng, batch * m * n, 1.0), &[batch, m, n]);
    let p = runtime::MatmulParams {
        trans_a: ta,
        trans_b: tb,
        alpha: 0.5,
        beta: 2.0,
    };
    ops::matmul(&mut cc, &ac, &bc, &p).unwrap();
    let spec = kernels::gemm::GemmSpec {
        batch,
        m,
        n,
        k,
        trans_a: ta,
        trans_b: tb,
        alpha: 0.5,
        beta: 2.0,
        b_batch_stride: if shared_b { 0 } else { k * n },
    };
    gemm.matmul(&spec, &ad, &bd, &mut cd).unwrap();
    let what = format!(
        "matmul {}->{} {batch}x{m}x{n}x{k} ta={ta} tb={tb} shared_b={shared_b}",
        I::SUFFIX,
        O::SUFFIX
    );
    // Inputs are exact in both; only the summation order differs, then one rounding to O.
    assert_close(&what, &down(g, &cd), &cpu(&cc), O::TOL.max(1e-5));
}

#[test]
fn gemm_matches_cpu() {
    use half::f16;
    use kernels::gemm::Gemm;
    let Some(g) = gpu() else { return };
    let mut rng = fresh_rng("gemm");
    let gemm = Gemm::new(&g).unwrap();
    for dims in [
        (1, 1, 1, 1),
        (1, 67, 129, 255),
        (1, 256, 512, 1024),
        (3, 17, 40, 33),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                for shared_b in [true, false] {
                    let flags = (ta, tb, shared_b);
                    gemm_case::<bf16, bf16>(&g, &gemm, &mut rng, dims, flags);
                    gemm_case::<bf16, f32>(&g, &gemm, &mut rng, dims, flags);
                    gemm_case::<f32, f32>(&g, &gemm, &mut rng, dims, flags);
                    gemm_case::<f16, f16>(&g, &gemm, &mut rng, dims, flags);
                }
            }
        }
    }
    let (a, b) = (up(&g, &[0f32; 4]), up(&g, &[0f32; 4]));
    let mut c = poisoned::<bf16>(&g, 4);
    let e = gemm.matmul(
        &kernels::gemm::GemmSpec::single(2, 2, 2, false, false, 1.0, 0.0),
        &a,
        &b,
        &mut c,
    );
    assert!(
        e.unwrap_err().to_string().contains("cannot produce"),
        "f32 inputs cannot write bf16"
    );
}
