//! Matmul through the `gemm` crate (f32 microkernels, rayon-parallel).

use gemm::Parallelism;
use rayon::prelude::*;

use crate::backend::{MatmulDims, MatmulParams};
use crate::{Result, Tensor};

/// Raw pointer that may cross rayon threads; each task touches a disjoint region.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// One row-major f32 GEMM: `c = alpha * op(a) @ op(b) + beta * c`, `c: [m, n]`.
/// `a` is `[m, k]` (or `[k, m]` when `ta`), `b` is `[k, n]` (or `[n, k]` when `tb`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    c: &mut [f32],
    alpha: f32,
    beta: f32,
    threads: usize,
) {
    debug_assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // Empty sum: only the beta term remains.
        c[..m * n]
            .iter_mut()
            .for_each(|x| *x = if beta == 0.0 { 0.0 } else { beta * *x });
        return;
    }
    let (a_cs, a_rs) = if ta { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if tb { (k as isize, 1) } else { (1, n as isize) };
    let par = if threads > 1 && m * n * k >= 48 * 48 * 48 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: slices outlive the call and their lengths cover the strided extents checked above;
    // gemm's `alpha` scales dst and `beta` the product (the reverse of BLAS naming).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            beta,
            alpha,
            false,
            false,
            false,
            par,
        )
    }
}

pub(crate) fn matmul(
    out: &mut Tensor,
    a: &Tensor,
    b: &Tensor,
    d: &MatmulDims,
    p: &MatmulParams,
) -> Result<()> {
    let af = a.f32_cow("matmul")?;
    let bf = b.f32_cow("matmul")?;
    let (m, n, k) = (d.m, d.n, d.k);
    out.with_f32_mut("matmul", p.beta != 0.0, |o| {
        if o.is_empty() {
            return Ok(());
        }
        let threads = rayon::current_num_threads();
        let small = m * n * k < 128 * 128 * 128;
        // Batch matrix i into its `[m, n]` block `c` of the output.
        let one = |i: usize, c: &mut [f32], threads: usize| {
            let (a_i, b_i) = (&af[i * m * k..], &bf[i * d.b_batch_stride..]);
            sgemm(
                m, n, k, a_i, p.trans_a, b_i, p.trans_b, c, p.alpha, p.beta, threads,
            );
        };
        if d.batch > 1 && small {
            // Many small matrices: parallel over the batch, one thread per GEMM.
            o.par_chunks_mut(m * n)
                .enumerate()
                .for_each(|(i, c)| one(i, c, 1));
        } else if d.b_batch_stride == 0 && !p.trans_a {
            // Shared right operand: the batch folds into m (one big GEMM, no copies).
            sgemm(
                d.batch * m,
                n,
                k,
                &af,
                false,
                &bf,
                p.trans_b,
                o,
                p.alpha,
                p.beta,
                threads,
            );
        } else {
            for (i, c) in o.chunks_mut(m * n).enumerate() {
                one(i, c, threads);
            }
        }
        Ok(())
    })
}
