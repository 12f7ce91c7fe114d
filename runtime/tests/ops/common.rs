//! Shared test helpers: random data, f64 reference implementations, tolerance checks and
//! central finite differences. Every test file uses these instead of its own loops.

#![allow(dead_code)]

use runtime::{DType, Rng, Tensor};

/// Odd sizes every op is exercised on.
pub const SIZES: [usize; 4] = [1, 7, 33, 127];

pub fn rng(seed: u64) -> Rng {
    Rng::new(seed)
}

pub fn randn(rng: &mut Rng, n: usize) -> Vec<f64> {
    // Round through f32 so the f64 reference sees exactly what the op sees.
    (0..n).map(|_| rng.normal() as f32 as f64).collect()
}

pub fn t32(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.iter().map(|&x| x as f32).collect::<Vec<f32>>(), shape).unwrap()
}

pub fn tbf16(v: &[f64], shape: &[usize]) -> Tensor {
    t32(v, shape).cast(DType::BF16).unwrap()
}

pub fn ids(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

pub fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32, &runtime::Device::Cpu).unwrap()
}

pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_f32_vec().unwrap().iter().map(|&x| x as f64).collect()
}

/// Values rounded to bf16, as f64 (the reference for bf16 inputs).
pub fn round_bf16(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|&x| runtime::bf16::from_f64(x).to_f64())
        .collect()
}

/// Asserts `|got - want| <= tol * (1 + |want|)` elementwise, naming the first failure.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_infinite() && g == w);
        assert!(ok, "{what}: element {i}: got {g}, want {w} (tol {tol})");
    }
}

pub fn assert_tensor_close(what: &str, got: &Tensor, want: &[f64], tol: f64) {
    assert_close(what, &f64s(got), want, tol);
}

/// Central finite differences of a scalar f64 function.
pub fn fd_grad(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * (1.0 + x[i].abs());
            xp[i] = x[i] + h;
            let fp = f(&xp);
            xp[i] = x[i] - h;
            let fm = f(&xp);
            xp[i] = x[i];
            (fp - fm) / (2.0 * h)
        })
        .collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn assert_err_names(err: runtime::Error, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} should mention {p:?}");
    }
}

/// f64 references of every op (row-major, same layouts as `runtime::ops`).
pub mod reference {
    /// `op(a) @ op(b)` for one matrix; `a` stored `[m,k]` or `[k,m]`, `b` `[k,n]` or `[n,k]`.
    pub fn matmul(
        a: &[f64],
        b: &[f64],
        m: usize,
        n: usize,
        k: usize,
        ta: bool,
        tb: bool,
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    s += av * bv;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    pub fn rmsnorm(x: &[f64], w: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
        let c = w.len();
        let mut out = vec![0.0; x.len()];
        let mut rstd = vec![];
        for (o, r) in out.chunks_mut(c).zip(x.chunks(c)) {
            let rs = 1.0 / (r.iter().map(|v| v * v).sum::<f64>() / c as f64 + eps).sqrt();
            rstd.push(rs);
            for i in 0..c {
                o[i] = w[i] * r[i] * rs;
            }
        }
        (out, rstd)
    }

    /// HF `rotate_half` RoPE on `[tokens, H, D]` with per-token positions and f64 angles from
    /// the given inverse frequencies.
    pub fn rope(x: &[f64], pos: &[i64], h: usize, d: usize, inv_freq: &[f64]) -> Vec<f64> {
        let half = d / 2;
        let mut out = x.to_vec();
        for (n, &p) in pos.iter().enumerate() {
            for hh in 0..h {
                let base = (n * h + hh) * d;
                for i in 0..half {
                    let a = p as f64 * inv_freq[i];
                    let (c, s) = (a.cos(), a.sin());
                    let (x1, x2) = (x[base + i], x[base + i + half]);
                    out[base + i] = x1 * c - x2 * s;
                    out[base + i + half] = x2 * c + x1 * s;
                }
            }
        }
        out
    }

    pub struct Attn<'a> {
        pub b: usize,
        pub t: usize,
        pub s: usize,
        pub h: usize,
        pub hkv: usize,
        pub d: usize,
        pub scale: f64,
        /// valid keys per sequence; query t at lens[b] - T + t
        pub lens: Vec<usize>,
        pub mask: Option<&'a [i64]>,
    }

    /// Returns (out [B,T,H,D], lse [B,H,T]).
    pub fn attention(a: &Attn, q: &[f64], k: &[f64], v: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (d, grp) = (a.d, a.h / a.hkv);
        let mut out = vec![0.0; a.b * a.t * a.h * d];
        let mut lse = vec![f64::NEG_INFINITY; a.b * a.h * a.t];
        for b in 0..a.b {
            for t in 0..a.t {
                let qpos = a.lens[b] - a.t + t;
                for h in 0..a.h {
                    let kh = h / grp;
                    let qv = &q[((b * a.t + t) * a.h + h) * d..][..d];
                    let mut sc = vec![];
                    for s in 0..=qpos {
                        if a.mask.is_some_and(|m| m[b * a.s + s] == 0) {
                            continue;
                        }
                        let kv = &k[((b * a.s + s) * a.hkv + kh) * d..][..d];
                        sc.push((s, super::dot(qv, kv) * a.scale));
                    }
                    if sc.is_empty() {
                        continue;
                    }
                    let mx = sc.iter().fold(f64::NEG_INFINITY, |m, x| m.max(x.1));
                    let sum: f64 = sc.iter().map(|x| (x.1 - mx).exp()).sum();
                    lse[(b * a.h + h) * a.t + t] = mx + sum.ln();
                    let o = &mut out[((b * a.t + t) * a.h + h) * d..][..d];
                    for &(s, x) in &sc {
                        let p = (x - mx).exp() / sum;
                        let vv = &v[((b * a.s + s) * a.hkv + kh) * d..][..d];
                        for i in 0..d {
                            o[i] += p * vv[i];
                        }
                    }
                }
            }
        }
        (out, lse)
    }

    pub fn silu(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    /// Per-row log-softmax of `x / temp`.
    pub fn log_softmax(x: &[f64], v: usize, temp: f64) -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        for (o, r) in out.chunks_mut(v).zip(x.chunks(v)) {
            let mx = r.iter().fold(f64::NEG_INFINITY, |m, &y| m.max(y / temp));
            let l = mx + r.iter().map(|&y| (y / temp - mx).exp()).sum::<f64>().ln();
            for i in 0..v {
                o[i] = r[i] / temp - l;
            }
        }
        out
    }
}
