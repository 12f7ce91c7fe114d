// RMSNorm over the last dimension: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps).
// x, y: [rows, d]; w: [d]; rstd: [rows] f32 (saved for backward). One block per row.
template <typename T>
__device__ void rmsnorm_fwd_impl(const T* x, const T* w, T* y, float* rstd, int rows, int d, float eps) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const T* xr = x + (i64)r * d;
    T* yr = y + (i64)r * d;
    float ss = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = ld(xr + i);
        ss += v * v;
    }
    ss = block_sum(ss);
    float rs = 1.0f / sqrtf(ss / (float)d + eps);
    if (threadIdx.x == 0) rstd[r] = rs;
    for (int i = threadIdx.x; i < d; i += blockDim.x) st(yr + i, ld(xr + i) * rs * ld(w + i));
}

// dx = rstd * (w*dy - xhat * mean(w*dy*xhat)), xhat = x*rstd; overwritten, or added to dx when
// accumulate_dx (the residual stream's gradient). One block per row.
template <typename T>
__device__ void rmsnorm_bwd_dx_impl(const T* x, const T* w, const float* rstd, const T* dy, T* dx, int rows, int d,
                                    int accumulate_dx) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const T* xr = x + (i64)r * d;
    const T* dyr = dy + (i64)r * d;
    T* dxr = dx + (i64)r * d;
    float rs = rstd[r];
    float dot = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dot += ld(w + i) * ld(dyr + i) * ld(xr + i) * rs;
    float c = block_sum(dot) / (float)d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float xh = ld(xr + i) * rs;
        float g = rs * (ld(w + i) * ld(dyr + i) - xh * c);
        st(dxr + i, accumulate_dx ? ld(dxr + i) + g : g);
    }
}

// dw[c] += sum_r dy[r,c] * x[r,c] * rstd[r] (accumulated, f32); block (32, 8): 32 columns, 8 row lanes.
template <typename T>
__device__ void rmsnorm_bwd_dw_impl(const T* x, const float* rstd, const T* dy, float* dw, int rows, int d) {
    __shared__ float part[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.f;
    if (c < d)
        for (int r = threadIdx.y; r < rows; r += 8) acc += ld(dy + (i64)r * d + c) * ld(x + (i64)r * d + c) * rstd[r];
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < d) {
        float s = 0.f;
#pragma unroll
        for (int k = 0; k < 8; k++) s += part[k][threadIdx.x];
        dw[c] += s;
    }
}

#define RMSNORM(T, S)                                                                                          \
    extern "C" __global__ void __launch_bounds__(256) rmsnorm_fwd_##S(const T* x, const T* w, T* y, float* rstd, \
                                                                      int rows, int d, float eps) {            \
        rmsnorm_fwd_impl(x, w, y, rstd, rows, d, eps);                                                         \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(256) rmsnorm_bwd_dx_##S(                                      \
        const T* x, const T* w, const float* rstd, const T* dy, T* dx, int rows, int d, int accumulate_dx) {   \
        rmsnorm_bwd_dx_impl(x, w, rstd, dy, dx, rows, d, accumulate_dx);                                                      \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(256)                                                          \
        rmsnorm_bwd_dw_##S(const T* x, const float* rstd, const T* dy, float* dw, int rows, int d) {           \
        rmsnorm_bwd_dw_impl(x, rstd, dy, dw, rows, d);                                                         \
    }
FOR_FLOAT_TYPES(RMSNORM)
