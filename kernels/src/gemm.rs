//! Row-major batched GEMM through cuBLASLt with f32 accumulation (f32, bf16 or f16 inputs; f32
//! or input-typed output): the matmul of the CUDA backend, as `runtime::ops::matmul` defines it,
//! and the baseline the hand-written kernels are measured against.

use crate::context::{mul, need, Elem, Gpu};
use crate::error::{shape, KernelError, Result};
use cudarc::cublaslt::{result, sys};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use std::ffi::c_void;
use std::sync::Arc;

/// `out[i] = alpha * op(a[i]) @ op(b[i]) + beta * out[i]` for `i < batch`, row-major;
/// op(a[i]) is [m, k] (`a` stored [k, m] when `trans_a`), op(b[i]) is [k, n] (`b` stored [n, k]
/// when `trans_b`). `b_batch_stride` is the element distance between b's matrices, 0 when one
/// b is shared by every batch entry (a weight).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmSpec {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub b_batch_stride: usize,
}

impl GemmSpec {
    /// One unbatched product.
    pub fn single(
        m: usize,
        n: usize,
        k: usize,
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    ) -> Self {
        GemmSpec {
            batch: 1,
            m,
            n,
            k,
            trans_a,
            trans_b,
            alpha,
            beta,
            b_batch_stride: 0,
        }
    }
}

/// Element types cuBLASLt multiplies.
pub trait GemmElem: Elem {
    const CUDA: sys::cudaDataType;
}
impl GemmElem for f32 {
    const CUDA: sys::cudaDataType = sys::cudaDataType::CUDA_R_32F;
}
impl GemmElem for half::bf16 {
    const CUDA: sys::cudaDataType = sys::cudaDataType::CUDA_R_16BF;
}
impl GemmElem for half::f16 {
    const CUDA: sys::cudaDataType = sys::cudaDataType::CUDA_R_16F;
}

/// True when libcublasLt can be loaded.
pub fn cublaslt_present() -> bool {
    // SAFETY: only tries to dlopen the library.
    unsafe { sys::is_culib_present() }
}

fn blas(op: &'static str) -> impl Fn(result::CublasError) -> KernelError {
    move |e| KernelError::Blas {
        op,
        msg: format!("{e:?}"),
    }
}

/// Descriptors freed on drop, whatever path leaves `matmul`.
struct Layout(sys::cublasLtMatrixLayout_t);
impl Drop for Layout {
    fn drop(&mut self) {
        // SAFETY: created by create_matrix_layout and dropped once.
        let _ = unsafe { result::destroy_matrix_layout(self.0) };
    }
}
struct Desc(sys::cublasLtMatmulDesc_t);
impl Drop for Desc {
    fn drop(&mut self) {
        // SAFETY: created by create_matmul_desc and dropped once.
        let _ = unsafe { result::destroy_matmul_desc(self.0) };
    }
}
struct Pref(sys::cublasLtMatmulPreference_t);
impl Drop for Pref {
    fn drop(&mut self) {
        // SAFETY: created by create_matmul_pref and dropped once.
        let _ = unsafe { result::destroy_matmul_pref(self.0) };
    }
}

fn layout(
    ty: sys::cudaDataType,
    rows: usize,
    cols: usize,
    ld: usize,
    batch: usize,
    stride: usize,
) -> Result<Layout> {
    const OP: &str = "matmul layout";
    let l = Layout(
        result::create_matrix_layout(ty, rows as u64, cols as u64, ld as i64).map_err(blas(OP))?,
    );
    if batch > 1 {
        let count = i32::try_from(batch)
            .map_err(|_| shape("matmul", format!("batch {batch} exceeds i32")))?;
        let stride = stride as i64;
        // SAFETY: attribute values point at live locals of the documented types.
        unsafe {
            result::set_matrix_layout_attribute(
                l.0,
                sys::cublasLtMatrixLayoutAttribute_t::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                (&count) as *const i32 as *const c_void,
                std::mem::size_of::<i32>(),
            )
            .map_err(blas(OP))?;
            result::set_matrix_layout_attribute(
                l.0,
                sys::cublasLtMatrixLayoutAttribute_t::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                (&stride) as *const i64 as *const c_void,
                std::mem::size_of::<i64>(),
            )
            .map_err(blas(OP))?;
        }
    }
    Ok(l)
}

/// A cuBLASLt handle and workspace bound to one stream.
pub struct Gemm {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    stream: Arc<CudaStream>,
}

// SAFETY: the handle is only used through &self on the owning stream; cuBLASLt handles may be
// shared between threads when calls do not overlap, which the stream serialises.
unsafe impl Send for Gemm {}
unsafe impl Sync for Gemm {}

impl Drop for Gemm {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { result::destroy_handle(self.handle) };
    }
}

/// Workspace the heuristics may use (Hopper kernels like 32 MiB).
const WORKSPACE_BYTES: usize = 32 << 20;

impl Gemm {
    pub fn new(gpu: &Gpu) -> Result<Self> {
        if !cublaslt_present() {
            return Err(KernelError::Unavailable(
                "libcublasLt.so.13 not on LD_LIBRARY_PATH".into(),
            ));
        }
        gpu.context()
            .bind_to_thread()
            .map_err(crate::context::drv("matmul init"))?;
        let handle = result::create_handle().map_err(blas("matmul init"))?;
        let workspace = gpu
            .stream()
            .alloc_zeros::<u8>(WORKSPACE_BYTES)
            .map_err(crate::context::drv("matmul init"))?;
        Ok(Self {
            handle,
            workspace,
            stream: gpu.stream().clone(),
        })
    }

    /// See [`GemmSpec`]. Inputs of one type; the output f32 or the inputs' type.
    pub fn matmul<I: GemmElem, O: GemmElem>(
        &self,
        g: &GemmSpec,
        a: &impl DevicePtr<I>,
        b: &impl DevicePtr<I>,
        c: &mut impl DevicePtrMut<O>,
    ) -> Result<()> {
        const OP: &str = "matmul";
        if O::SUFFIX != "f32" && O::SUFFIX != I::SUFFIX {
            return Err(shape(
                OP,
                format!("{} inputs cannot produce {} output", I::SUFFIX, O::SUFFIX),
            ));
        }
        let (m, n, k, batch) = (g.m, g.n, g.k, g.batch);
        if m == 0 || n == 0 || batch == 0 {
            return Ok(());
        }
        if k == 0 {
            return Err(shape(OP, format!("inner dimension is 0 ({m}x{n}x{k})")));
        }
        need(OP, "a", a.len(), mul(OP, batch, mul(OP, m, k)?)?)?;
        let b_need = if g.b_batch_stride == 0 {
            mul(OP, k, n)?
        } else {
            mul(OP, batch - 1, g.b_batch_stride)? + k * n
        };
        need(OP, "b", b.len(), b_need)?;
        need(OP, "c", c.len(), mul(OP, batch, mul(OP, m, n)?)?)?;

        // Row-major C = A B is column-major C^T = B^T A^T: cuBLASLt's A is our b, its B our a.
        let (a_rows, a_cols, lda) = if g.trans_b { (k, n, k) } else { (n, k, n) };
        let (b_rows, b_cols, ldb) = if g.trans_a { (m, k, m) } else { (k, m, k) };
        let la = layout(I::CUDA, a_rows, a_cols, lda, batch, g.b_batch_stride)?;
        let lb = layout(I::CUDA, b_rows, b_cols, ldb, batch, m * k)?;
        let lc = layout(O::CUDA, n, m, n, batch, m * n)?;
        let desc = Desc(
            result::create_matmul_desc(
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cudaDataType::CUDA_R_32F,
            )
            .map_err(blas(OP))?,
        );
        // cublasOperation_t as an i32: CUBLAS_OP_N = 0, CUBLAS_OP_T = 1.
        let (ta, tb) = (g.trans_b as i32, g.trans_a as i32);
        // SAFETY: attribute values point at live locals of the documented types.
        unsafe {
            result::set_matmul_desc_attribute(
                desc.0,
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                (&ta) as *const i32 as *const c_void,
                std::mem::size_of::<i32>(),
            )
            .map_err(blas(OP))?;
            result::set_matmul_desc_attribute(
                desc.0,
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
                (&tb) as *const i32 as *const c_void,
                std::mem::size_of::<i32>(),
            )
            .map_err(blas(OP))?;
        }
        let pref = Pref(result::create_matmul_pref().map_err(blas(OP))?);
        let ws = WORKSPACE_BYTES;
        // SAFETY: as above.
        unsafe {
            result::set_matmul_pref_attribute(
                pref.0,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&ws) as *const usize as *const c_void,
                std::mem::size_of::<usize>(),
            )
            .map_err(blas(OP))?;
        }
        // SAFETY: every descriptor is live; the heuristic only reads them.
        let heuristic = unsafe {
            result::get_matmul_algo_heuristic(self.handle, desc.0, la.0, lb.0, lc.0, lc.0, pref.0)
        }
        .map_err(blas(OP))?;
        let s = &self.stream;
        let (ap, _g1) = a.device_ptr(s);
        let (bp, _g2) = b.device_ptr(s);
        let (cp, _g3) = c.device_ptr_mut(s);
        let (wp, _g4) = self.workspace.device_ptr(s);
        // SAFETY: buffer lengths checked above against the shapes the layouts describe; C is read
        // (beta) and written in place; the workspace is exclusively ours on this stream.
        unsafe {
            result::matmul(
                self.handle,
                desc.0,
                (&g.alpha) as *const f32 as *const c_void,
                (&g.beta) as *const f32 as *const c_void,
                bp as *const c_void,
                la.0,
                ap as *const c_void,
                lb.0,
                cp as *const c_void,
                lc.0,
                cp as *mut c_void,
                lc.0,
                &heuristic.algo,
                wp as *mut c_void,
                ws,
                s.cu_stream() as *mut _,
            )
        }
        .map_err(blas(OP))
    }
}
