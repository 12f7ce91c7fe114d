//! Row-major GEMM through cuBLASLt (bf16 in, f32 accumulate): the baseline the hand-written
//! kernels are measured against, and the matmul of the CUDA backend.

use crate::context::{mul, need, Gpu};
use crate::error::{shape, KernelError, Result};
use cudarc::cublaslt::{CudaBlasLT, Matmul, MatmulConfig};
use cudarc::driver::{DevicePtr, DevicePtrMut};

/// C[m, n] = alpha * op(A) op(B) + beta * C, all row-major; op(A) is [m, k], op(B) is [k, n].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
}

/// True when libcublasLt can be loaded.
pub fn cublaslt_present() -> bool {
    // SAFETY: only tries to dlopen the library.
    unsafe { cudarc::cublaslt::sys::is_culib_present() }
}

pub struct Gemm {
    lt: CudaBlasLT,
}

impl Gemm {
    pub fn new(gpu: &Gpu) -> Result<Self> {
        if !cublaslt_present() {
            return Err(KernelError::Unavailable(
                "libcublasLt.so.13 not on LD_LIBRARY_PATH".into(),
            ));
        }
        let lt = CudaBlasLT::new(gpu.stream().clone()).map_err(|e| KernelError::Blas {
            op: "cublasLt init",
            msg: format!("{e:?}"),
        })?;
        Ok(Self { lt })
    }

    /// bf16 GEMM with f32 accumulation; see [`GemmSpec`].
    pub fn matmul_bf16<I: DevicePtr<half::bf16>, O: DevicePtrMut<half::bf16>>(
        &self,
        g: &GemmSpec,
        a: &I,
        b: &I,
        c: &mut O,
    ) -> Result<()> {
        const OP: &str = "matmul_bf16";
        if g.m == 0 || g.n == 0 || g.k == 0 {
            return Err(shape(OP, format!("empty GEMM {}x{}x{}", g.m, g.n, g.k)));
        }
        need(OP, "a", a.len(), mul(OP, g.m, g.k)?)?;
        need(OP, "b", b.len(), mul(OP, g.k, g.n)?)?;
        need(OP, "c", c.len(), mul(OP, g.m, g.n)?)?;
        let big =
            |v: usize| i64::try_from(v).map_err(|_| shape(OP, format!("dimension {v} too large")));
        // Row-major C = A B is column-major C^T = B^T A^T: swap the operands and m/n.
        let cfg = MatmulConfig {
            transa: g.trans_b,
            transb: g.trans_a,
            transc: false,
            m: g.n as u64,
            n: g.m as u64,
            k: g.k as u64,
            alpha: g.alpha,
            lda: big(if g.trans_b { g.k } else { g.n })?,
            ldb: big(if g.trans_a { g.m } else { g.k })?,
            beta: g.beta,
            ldc: big(g.n)?,
            stride_a: None,
            stride_b: None,
            stride_c: None,
            stride_bias: None,
            batch_size: None,
        };
        // SAFETY: buffer lengths checked above against the row-major shapes.
        unsafe { self.lt.matmul(cfg, b, a, c, None, None) }.map_err(|e| KernelError::Blas {
            op: OP,
            msg: format!("{e:?}"),
        })
    }
}
