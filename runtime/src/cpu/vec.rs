//! Small vectorisable kernels shared by the CPU ops: a branch-free `exp`, multi-accumulator
//! dot products, and a strided single-threaded GEMM for blocked attention.

use gemm::Parallelism;

/// `exp(x)` for f32 in a form LLVM vectorises (no libm call): Cody-Waite reduction to
/// `r in [-ln2/2, ln2/2]`, Cephes' degree-6 polynomial, scaling by `2^k` through the exponent
/// bits. Relative error about 2 ulp; returns 0 below -87 (results under 1.7e-38, incl. -inf).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.min(88.0);
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let k = t - MAGIC;
    let r = xc - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // `t`'s low mantissa bits hold k (no float->int conversion, which would not vectorise).
    let scale = f32::from_bits(t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23);
    if x < -87.0 {
        0.0
    } else {
        y * scale
    }
}

/// `sigmoid(x) = 1 / (1 + exp(-x))`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Defines a function whose body is compiled twice: once for the baseline target and once with
/// AVX2+FMA, picked at run time. The body is plain Rust, so both builds compute bit-identical
/// results (no FP contraction); only the vector width differs.
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident : $t:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast($($a: $t),*) $(-> $r)? $body
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the running CPU has the features `fast` was compiled for.
                    return unsafe { fast($($a),*) };
                }
            }
            $body
        }
    };
}

simd_fn! {
    /// Dot product with 8 independent accumulators (vectorisable, unlike a serial f32 sum).
    pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f32; 8];
        let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ar, br) = (ac.remainder(), bc.remainder());
        for (x, y) in ac.zip(bc) {
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
        let mut s: f32 = acc.iter().sum();
        for (x, y) in ar.iter().zip(br) {
            s += x * y;
        }
        s
    }
}

simd_fn! {
    /// Max over a slice (NEG_INFINITY when empty).
    pub(crate) fn max(a: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 8];
        let c = a.chunks_exact(8);
        let r = c.remainder();
        for x in c {
            for i in 0..8 {
                acc[i] = acc[i].max(x[i]);
            }
        }
        acc.iter().chain(r).fold(f32::NEG_INFINITY, |m, &v| m.max(v))
    }
}

simd_fn! {
    /// `sum_i exp(x[i] * scale - shift)`.
    pub(crate) fn sum_exp(x: &[f32], scale: f32, shift: f32) -> f32 {
        // exp into a small buffer, then an 8-accumulator sum: both loops vectorise, the fused
        // form does not.
        let mut buf = [0.0f32; 256];
        let mut acc = [0.0f32; 8];
        let mut rest = 0.0f32;
        for c in x.chunks(256) {
            let b = &mut buf[..c.len()];
            for (o, &v) in b.iter_mut().zip(c) {
                *o = exp(v * scale - shift);
            }
            let it = b.chunks_exact(8);
            rest += it.remainder().iter().sum::<f32>();
            for v in it {
                for i in 0..8 {
                    acc[i] += v[i];
                }
            }
        }
        acc.iter().sum::<f32>() + rest
    }
}

simd_fn! {
    /// `out[i] = mul * exp(x[i] * scale - shift)`.
    pub(crate) fn exp_into(out: &mut [f32], x: &[f32], scale: f32, shift: f32, mul: f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = mul * exp(v * scale - shift);
        }
    }
}

simd_fn! {
    /// In place `x[i] = exp(x[i] - shift)`; returns the new sum.
    pub(crate) fn exp_inplace(x: &mut [f32], shift: f32) -> f32 {
        for v in x.iter_mut() {
            *v = exp(*v - shift);
        }
        let mut acc = [0.0f32; 8];
        let it = x.chunks_exact(8);
        let rest: f32 = it.remainder().iter().sum();
        for v in it {
            for i in 0..8 {
                acc[i] += v[i];
            }
        }
        acc.iter().sum::<f32>() + rest
    }
}

simd_fn! {
    /// `out = silu(g) * u`.
    pub(crate) fn swiglu_fwd(out: &mut [f32], g: &[f32], u: &[f32]) {
        for ((o, &gv), &uv) in out.iter_mut().zip(g).zip(u) {
            *o = gv * sigmoid(gv) * uv;
        }
    }
}

simd_fn! {
    /// `du = dy * silu(g)`, `dg = dy * u * silu'(g)`.
    pub(crate) fn swiglu_bwd(dg: &mut [f32], du: &mut [f32], dy: &[f32], g: &[f32], u: &[f32]) {
        for ((dg, du), ((&gv, &uv), &dyv)) in dg.iter_mut().zip(du.iter_mut()).zip(g.iter().zip(u).zip(dy)) {
            let s = sigmoid(gv);
            *du = dyv * gv * s;
            *dg = dyv * uv * s * (1.0 + gv * (1.0 - s));
        }
    }
}

simd_fn! {
    /// f32 -> bf16 bits, round to nearest even, NaN kept quiet: bit-identical to
    /// `half::bf16::from_f32`, but in a form that vectorises.
    pub(crate) fn f32_to_bf16_bits(src: &[f32], dst: &mut [u16]) {
        for (o, &x) in dst.iter_mut().zip(src) {
            let b = x.to_bits();
            let rounded = b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16;
            let nan = (b & 0x7FFF_FFFF) > 0x7F80_0000;
            *o = if nan { ((b >> 16) | 0x0040) as u16 } else { rounded as u16 };
        }
    }
}

/// A strided matrix operand: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl Mat {
    /// The matrix whose row `i` starts at `s[i * stride]` (unit column stride).
    pub(crate) fn rows(s: &[f32], stride: usize) -> Mat {
        Mat {
            ptr: s.as_ptr(),
            rs: stride as isize,
            cs: 1,
        }
    }

    /// The transpose of [`Mat::rows`]: element `(i, j)` at `s[j * stride + i]`.
    pub(crate) fn cols(s: &[f32], stride: usize) -> Mat {
        Mat {
            ptr: s.as_ptr(),
            rs: 1,
            cs: stride as isize,
        }
    }
}

/// Single-threaded `dst = alpha * a @ b + beta * dst` with `a: [m, k]`, `b: [k, n]`, row-major
/// `dst` with row stride `dst_rs`. `beta == 0` ignores the old contents.
///
/// # Safety
/// Every addressed element of `a`, `b` (reads) and `dst` (writes) must be in bounds, and `dst`
/// must not be written concurrently by anyone else.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    a: Mat,
    b: Mat,
    alpha: f32,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            let row = std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n);
            row.iter_mut()
                .for_each(|x| *x = if beta == 0.0 { 0.0 } else { beta * *x });
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        beta != 0.0,
        a.ptr,
        a.cs,
        a.rs,
        b.ptr,
        b.cs,
        b.rs,
        beta,
        alpha,
        false,
        false,
        false,
        Parallelism::None,
    )
}
