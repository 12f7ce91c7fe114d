// Fused log-softmax + per-token log-prob / cross-entropy over one chunk of rows.
// The caller feeds logits a chunk of rows at a time (GEMM -> this kernel -> GEMM back), so the
// full B*T*vocab f32 logits never exist. z = logits * inv_temp.
// Forward: lse[r] = logsumexp_j z[r,j]; logprob[r] = z[r,t] - lse[r] (0 where t == ignore_index,
// NaN where t is outside the vocabulary). Cross-entropy is -logprob.
// Backward: given g[r] = dL/dlogprob[r], dlogits[r,j] = g[r] * inv_temp * ([j==t] - softmax(z)_j),
// zero on ignored rows. dlogits may alias logits. One block per row.
template <typename T>
__device__ void xent_fwd_impl(const T* logits, const int* targets, float* logprob, float* lse, int rows, int vocab,
                              int ignore_index, float inv_temp) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const T* lr = logits + (i64)r * vocab;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, ld(lr + j) * inv_temp);
    m = block_max(m);
    float s = 0.f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) s += expf(ld(lr + j) * inv_temp - m);
    s = block_sum(s);
    float l = m + logf(s);
    if (threadIdx.x == 0) {
        lse[r] = l;
        int t = targets[r];
        if (t == ignore_index) logprob[r] = 0.f;
        else if (t < 0 || t >= vocab) logprob[r] = QNAN;
        else logprob[r] = ld(lr + t) * inv_temp - l;
    }
}

template <typename T>
__device__ void xent_bwd_impl(const T* logits, const int* targets, const float* lse, const float* g, T* dlogits,
                              int rows, int vocab, int ignore_index, float inv_temp) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const T* lr = logits + (i64)r * vocab;
    T* dr = dlogits + (i64)r * vocab;
    int t = targets[r];
    if (t == ignore_index) {
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) st(dr + j, 0.f);
        return;
    }
    float l = lse[r], gr = g[r] * inv_temp;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        float p = expf(ld(lr + j) * inv_temp - l);
        st(dr + j, gr * ((j == t ? 1.f : 0.f) - p));
    }
}

#define XENT(T, S)                                                                                           \
    extern "C" __global__ void __launch_bounds__(1024)                                                       \
        cross_entropy_fwd_##S(const T* logits, const int* targets, float* logprob, float* lse, int rows,     \
                              int vocab, int ignore_index, float inv_temp) {                                 \
        xent_fwd_impl(logits, targets, logprob, lse, rows, vocab, ignore_index, inv_temp);                   \
    }                                                                                                        \
    extern "C" __global__ void __launch_bounds__(1024)                                                       \
        cross_entropy_bwd_##S(const T* logits, const int* targets, const float* lse, const float* g,         \
                              T* dlogits, int rows, int vocab, int ignore_index, float inv_temp) {           \
        xent_bwd_impl(logits, targets, lse, g, dlogits, rows, vocab, ignore_index, inv_temp);                \
    }
XENT(float, f32)
XENT(bf16, bf16)
