// Multi-tensor AdamW (decoupled weight decay, bias correction) on f32 master weights, one launch
// for every parameter tensor. The host builds two tables once per parameter set:
//   tensors[i] = {param f32*, grad f32*, m f32*, v f32*, bf16 copy* (0 = none), n}
//   chunks[b]  = {tensor index, first element}; block b updates ADAMW_CHUNK elements from there.
// grad_scale folds gradient clipping into the same pass.
#define ADAMW_CHUNK 4096
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
    adamw_step(const AdamwTensor* tensors, const AdamwChunk* chunks, int nchunks, float lr, float beta1,
               float beta2, float eps, float weight_decay, float bias_corr1, float bias_corr2, float grad_scale) {
    if ((int)blockIdx.x >= nchunks) return;
    AdamwChunk c = chunks[blockIdx.x];
    AdamwTensor t = tensors[c.tensor];
    i64 end = c.start + ADAMW_CHUNK < t.n ? c.start + ADAMW_CHUNK : t.n;
    float decay = 1.0f - lr * weight_decay;
    for (i64 i = c.start + threadIdx.x; i < end; i += blockDim.x) {
        float g = t.g[i] * grad_scale;
        float m = beta1 * t.m[i] + (1.0f - beta1) * g;
        float v = beta2 * t.v[i] + (1.0f - beta2) * g * g;
        float p = t.p[i] * decay - lr * (m / bias_corr1) / (sqrtf(v / bias_corr2) + eps);
        t.m[i] = m;
        t.v[i] = v;
        t.p[i] = p;
        if (t.pb) st(t.pb + i, p);
    }
}
