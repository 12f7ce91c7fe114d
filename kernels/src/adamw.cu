// AdamW (PyTorch semantics: decoupled weight decay, bias correction) on f32 master weights,
// with the runtime CPU op's arithmetic: p = p*(1 - lr*wd) - step_size * m / (sqrt(v)*inv_sqrt_bc2 + eps),
// step_size = lr / (1 - beta1^step), inv_sqrt_bc2 = 1 / sqrt(1 - beta2^step) (host-computed in f64).
// grad_scale folds gradient clipping into the same pass; `copy` (nullable) receives the updated
// weights in the forward's dtype.
#define ADAMW_CHUNK 4096

__device__ __forceinline__ float adamw_update(float* p, float* m, float* v, float g, float beta1, float beta2,
                                              float eps, float decay, float step_size, float inv_sqrt_bc2) {
    float mi = beta1 * *m + (1.0f - beta1) * g;
    float vi = beta2 * *v + (1.0f - beta2) * g * g;
    float pi = *p * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    *m = mi;
    *v = vi;
    *p = pi;
    return pi;
}

// One tensor: param/m/v f32, grad and copy of type T (copy nullable).
#define ADAMW_ONE(T, S)                                                                                      \
    extern "C" __global__ void __launch_bounds__(256)                                                        \
        adamw_##S(float* p, const T* grad, float* m, float* v, T* copy, i64 n, float beta1, float beta2,     \
                  float eps, float decay, float step_size, float inv_sqrt_bc2, float grad_scale) {           \
        for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {  \
            float pi = adamw_update(p + i, m + i, v + i, ld(grad + i) * grad_scale, beta1, beta2, eps, decay, \
                                    step_size, inv_sqrt_bc2);                                                \
            if (copy) st(copy + i, pi);                                                                      \
        }                                                                                                    \
    }
FOR_FLOAT_TYPES(ADAMW_ONE)

// Many tensors in one launch. The host builds two tables once per parameter set:
//   tensors[i] = {param f32*, grad f32*, m f32*, v f32*, bf16 copy* (0 = none), n}
//   chunks[b]  = {tensor index, first element}; block b updates ADAMW_CHUNK elements from there.
struct AdamwTensor {
    float* p;
    const float* g;
    float* m;
    float* v;
    bf16* pb;
    i64 n;
};
struct AdamwChunk {
    i64 tensor;
    i64 start;
};

extern "C" __global__ void __launch_bounds__(256)
    adamw_multi(const AdamwTensor* tensors, const AdamwChunk* chunks, int nchunks, float beta1, float beta2,
                float eps, float decay, float step_size, float inv_sqrt_bc2, float grad_scale) {
    if ((int)blockIdx.x >= nchunks) return;
    AdamwChunk c = chunks[blockIdx.x];
    AdamwTensor t = tensors[c.tensor];
    i64 end = c.start + ADAMW_CHUNK < t.n ? c.start + ADAMW_CHUNK : t.n;
    for (i64 i = c.start + threadIdx.x; i < end; i += blockDim.x) {
        float pi = adamw_update(t.p + i, t.m + i, t.v + i, t.g[i] * grad_scale, beta1, beta2, eps, decay, step_size,
                                inv_sqrt_bc2);
        if (t.pb) st(t.pb + i, pi);
    }
}
