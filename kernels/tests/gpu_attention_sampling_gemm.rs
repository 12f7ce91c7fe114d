//! Attention, sampling and the cuBLASLt GEMM against plain-loop f64 CPU twins on fresh random
//! inputs, outputs poisoned first. Skips (with a printed reason) without a GPU.
#![cfg(feature = "cuda")]
// Reference loops index several arrays by the same counters; iterators would hide the math.
#![allow(clippy::needless_range_loop)]

mod common;

use common::*;
use half::bf16;
use kernels::attention::{attention_bwd, attention_fwd, AttnShape};
use kernels::cudarc::driver::DevicePtr;
use kernels::Gpu;

struct AttnRef {
    out: Vec<f64>,
    lse: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

/// Plain f64 causal GQA attention and its backward, same layouts as attention.cu.
fn attn_ref(
    a: &AttnShape,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    mask: Option<&[i32]>,
    dout: &[f64],
) -> AttnRef {
    let (b_, t_, s_, hq, hk, d) = (
        a.batch,
        a.q_len,
        a.kv_len,
        a.n_heads,
        a.n_kv_heads,
        a.head_dim,
    );
    let qi = |b: usize, t: usize, h: usize| ((b * t_ + t) * hq + h) * d;
    let ki = |b: usize, s: usize, h: usize| ((b * s_ + s) * hk + h) * d;
    let mut r = AttnRef {
        out: vec![0.0; q.len()],
        lse: vec![0.0; b_ * hq * t_],
        dq: vec![0.0; q.len()],
        dk: vec![0.0; k.len()],
        dv: vec![0.0; v.len()],
    };
    let scale = a.scale as f64;
    for b in 0..b_ {
        for h in 0..hq {
            let kh = h / (hq / hk);
            for t in 0..t_ {
                let keys: Vec<usize> = (0..s_)
                    .filter(|&s| s <= t + a.q_offset && mask.is_none_or(|m| m[b * s_ + s] != 0))
                    .collect();
                let li = (b * hq + h) * t_ + t;
                if keys.is_empty() {
                    r.lse[li] = f64::NEG_INFINITY;
                    continue;
                }
                let sc: Vec<f64> = keys
                    .iter()
                    .map(|&s| {
                        (0..d)
                            .map(|x| q[qi(b, t, h) + x] * k[ki(b, s, kh) + x])
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                r.lse[li] = m + z.ln();
                let p: Vec<f64> = sc.iter().map(|x| (x - m).exp() / z).collect();
                for (pi, &s) in keys.iter().enumerate() {
                    for x in 0..d {
                        r.out[qi(b, t, h) + x] += p[pi] * v[ki(b, s, kh) + x];
                    }
                }
                let o = &r.out[qi(b, t, h)..qi(b, t, h) + d].to_vec();
                let delta: f64 = (0..d).map(|x| dout[qi(b, t, h) + x] * o[x]).sum();
                for (pi, &s) in keys.iter().enumerate() {
                    let dp: f64 = (0..d)
                        .map(|x| dout[qi(b, t, h) + x] * v[ki(b, s, kh) + x])
                        .sum();
                    let ds = p[pi] * (dp - delta) * scale;
                    for x in 0..d {
                        r.dq[qi(b, t, h) + x] += ds * k[ki(b, s, kh) + x];
                        r.dk[ki(b, s, kh) + x] += ds * q[qi(b, t, h) + x];
                        r.dv[ki(b, s, kh) + x] += p[pi] * dout[qi(b, t, h) + x];
                    }
                }
            }
        }
    }
    r
}

fn attention_case<E: Host>(g: &Gpu, rng: &mut Rng, a: AttnShape, masked: bool) {
    let nq = a.batch * a.q_len * a.n_heads * a.head_dim;
    let nk = a.batch * a.kv_len * a.n_kv_heads * a.head_dim;
    let rows = a.batch * a.n_heads * a.q_len;
    let (q, qf) = rounded::<E>(&rng.vec(nq, 1.0));
    let (k, kf) = rounded::<E>(&rng.vec(nk, 1.0));
    let (v, vf) = rounded::<E>(&rng.vec(nk, 1.0));
    let (dout, df) = rounded::<E>(&rng.vec(nq, 1.0));
    // Left padding on the second sequence: its first keys are masked out.
    let mask: Vec<i32> = (0..a.batch * a.kv_len)
        .map(|i| (i / a.kv_len == 0 || i % a.kv_len >= 2) as i32)
        .collect();
    let (qd, kd, vd, dd, md) = (up(g, &q), up(g, &k), up(g, &v), up(g, &dout), up(g, &mask));
    let mref: Option<&dyn DevicePtr<i32>> = if masked { Some(&md) } else { None };
    let mut out = poisoned::<E>(g, nq);
    let mut lse = poisoned_f32(g, rows);
    attention_fwd(g, &a, &qd, &kd, &vd, mref, &mut out, &mut lse).unwrap();
    let mut delta = poisoned_f32(g, rows);
    let (mut dq, mut dk, mut dv) = (
        poisoned::<E>(g, nq),
        poisoned::<E>(g, nk),
        poisoned::<E>(g, nk),
    );
    attention_bwd(
        g, &a, &qd, &kd, &vd, mref, &out, &dd, &lse, &mut delta, &mut dq, &mut dk, &mut dv,
    )
    .unwrap();
    let r = attn_ref(&a, &qf, &kf, &vf, masked.then_some(&mask[..]), &df);
    let what = format!("attention {a:?} masked={masked} {}", E::SUFFIX);
    assert_close(&format!("{what} out"), &down(g, &out), &r.out, E::TOL);
    let (gl, rl): (Vec<f64>, Vec<f64>) = down(g, &lse)
        .into_iter()
        .zip(r.lse)
        .map(|(x, y)| {
            if y.is_infinite() && x == y {
                (0.0, 0.0)
            } else {
                (x, y)
            }
        })
        .unzip();
    assert_close(&format!("{what} lse"), &gl, &rl, 1e-5);
    assert_close(&format!("{what} dq"), &down(g, &dq), &r.dq, E::TOL);
    assert_close(&format!("{what} dk"), &down(g, &dk), &r.dk, E::TOL);
    assert_close(&format!("{what} dv"), &down(g, &dv), &r.dv, E::TOL);
}

#[test]
fn attention_matches_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("attention");
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
    let decode = AttnShape {
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
    for a in [base, decode, odd, wide] {
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
    let mut l = up(&g, &[0f32; 4]);
    let e = attention_fwd(&g, &bad, &x, &x, &x, None, &mut o, &mut l)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("attention_fwd") && e.contains("n_kv_heads"),
        "{e}"
    );
}

/// CPU twin of sample_*: same kept-set rule, f64 arithmetic, first index past u * mass.
fn sample_ref(logits: &[f64], u: f32, temperature: f32, top_k: usize, top_p: f32) -> usize {
    if temperature <= 0.0 {
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        return logits.iter().position(|&x| x == m).unwrap();
    }
    let z: Vec<f64> = logits
        .iter()
        .map(|&x| ((x as f32) * (1.0 / temperature)) as f64)
        .collect();
    let mut sorted = z.clone();
    sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let kth = if top_k > 0 && top_k < z.len() {
        sorted[top_k - 1]
    } else {
        f64::NEG_INFINITY
    };
    let m = sorted[0];
    let mass = |thr: f64| {
        z.iter()
            .filter(|&&x| x >= thr && x >= kth)
            .map(|x| (x - m).exp())
            .sum::<f64>()
    };
    let total = mass(kth);
    let mut thr = kth;
    if top_p < 1.0 {
        // Highest value whose kept mass at or above it still reaches top_p of the total.
        let kept: Vec<f64> = sorted.iter().cloned().filter(|&x| x >= kth).collect();
        let mut acc = 0.0;
        for (i, &x) in kept.iter().enumerate() {
            acc += (x - m).exp();
            let last_of_ties = i + 1 == kept.len() || kept[i + 1] != x;
            if last_of_ties && acc >= top_p as f64 * total {
                thr = x;
                break;
            }
        }
    }
    let target = u as f64 * mass(thr);
    let mut acc = 0.0;
    let mut last = 0;
    for (j, &x) in z.iter().enumerate() {
        if x >= thr {
            acc += (x - m).exp();
            last = j;
            if acc > target {
                return j;
            }
        }
    }
    last
}

fn sampling_case<E: Host>(
    g: &Gpu,
    rng: &mut Rng,
    rows: usize,
    vocab: usize,
    p: kernels::sampling::SamplingParams,
) {
    let (l, lf) = rounded::<E>(&rng.vec(rows * vocab, 6.0));
    let u: Vec<f32> = (0..rows).map(|_| rng.unit()).collect();
    let (ld, ud) = (up(g, &l), up(g, &u));
    let mut out = up(g, &vec![-1i32; rows]);
    kernels::sampling::sample(g, &p, &ld, &ud, &mut out, rows, vocab).unwrap();
    g.synchronize().unwrap();
    let got: Vec<i32> = g.stream().clone_dtoh(&out).unwrap();
    let mut mismatches = 0;
    for r in 0..rows {
        let want = sample_ref(
            &lf[r * vocab..(r + 1) * vocab],
            u[r],
            p.temperature,
            p.top_k,
            p.top_p,
        );
        if got[r] as usize != want {
            mismatches += 1;
            eprintln!("sample row {r} {p:?}: gpu {} cpu {want}", got[r]);
        }
    }
    // Running sums in f32 vs f64 may split a boundary differently in rare rows only.
    assert!(
        mismatches * 50 <= rows,
        "{mismatches}/{rows} rows differ for {p:?}"
    );
}

#[test]
fn sampling_matches_cpu() {
    use kernels::sampling::SamplingParams;
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("sampling");
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
        sampling_case::<f32>(&g, &mut rng, 64, 3001, p);
        sampling_case::<bf16>(&g, &mut rng, 64, 3001, p);
    }
    sampling_case::<bf16>(
        &g,
        &mut rng,
        4,
        128_256,
        SamplingParams {
            temperature: 0.6,
            top_k: 0,
            top_p: 0.95,
        },
    );
}

#[test]
fn gemm_bf16_matches_cpu() {
    use kernels::gemm::{Gemm, GemmSpec};
    let Some(g) = gpu() else { return };
    let mut rng = Rng::fresh("gemm");
    let gemm = Gemm::new(&g).unwrap();
    for (m, n, k) in [(1, 1, 1), (67, 129, 255), (256, 512, 1024)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (a, af) = rounded::<bf16>(&rng.vec(m * k, 1.0));
            let (b, bf) = rounded::<bf16>(&rng.vec(k * n, 1.0));
            let (c0, cf) = rounded::<bf16>(&rng.vec(m * n, 1.0));
            let spec = GemmSpec {
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
                alpha: 0.5,
                beta: 2.0,
            };
            let (ad, bd) = (up(&g, &a), up(&g, &b));
            let mut cd = up(&g, &c0);
            gemm.matmul_bf16(&spec, &ad, &bd, &mut cd).unwrap();
            let mut want = vec![0.0; m * n];
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k)
                        .map(|x| {
                            let av = if ta { af[x * m + i] } else { af[i * k + x] };
                            let bv = if tb { bf[j * k + x] } else { bf[x * n + j] };
                            av * bv
                        })
                        .sum();
                    want[i * n + j] = 0.5 * dot + 2.0 * cf[i * n + j];
                }
            }
            assert_close(
                &format!("gemm {m}x{n}x{k} ta={ta} tb={tb}"),
                &down(&g, &cd),
                &want,
                1e-2,
            );
        }
    }
}
