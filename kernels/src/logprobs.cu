// Fused log-softmax + per-token log-probs (cross-entropy is -logp), and softmax.
// The caller feeds logits a chunk of rows at a time (GEMM -> these kernels -> GEMM back), so the
// full B*T*vocab f32 logits never exist. z = logits * inv_temp. targets: [rows] i32.
// Forward: lse[r] = logsumexp_j z[r,j]; logp[r] = z[r,t] - lse[r]; 0 where has_ignore and
// t == ignore_index; NaN where t is outside the vocabulary (the runtime's CPU op errors there).
// Backward: dlogits[r,j] = scale * g[r] * inv_temp * ([j==t] - softmax(z)_j), g = dlogp or 1
// when dlogp is null; zero on ignored rows. dlogits may alias logits. One block per row.
// Row max and sum of exp(z - max) in one pass over the row (online rescaling per thread, then
// a block-wide combine), so the forward reads each logit once instead of twice.
template <typename T>
__device__ void row_max_sumexp(const T* row, int vocab, float inv_temp, float* max_out, float* sum_out) {
    float m = NEG_INF, s = 0.f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        float z = ld(row + j) * inv_temp;
        if (z > m) {
            s = s * expf(m - z) + 1.0f;
            m = z;
        } else if (z > NEG_INF) {  // -inf logits (masked tokens) add nothing; -inf - -inf is NaN
            s += expf(z - m);
        }
    }
    float bm = block_max(m);
    // Threads that saw no finite value contribute nothing (avoids -inf - -inf).
    float part = m == NEG_INF ? 0.f : s * expf(m - bm);
    *sum_out = block_sum(part);
    *max_out = bm;
}

template <typename T>
__device__ void logprobs_fwd_impl(const T* logits, const int* targets, float* logp, float* lse, int rows,
                                  int vocab, long long ignore_index, int has_ignore, float inv_temp) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const T* lr = logits + (i64)r * vocab;
    float m, s;
    row_max_sumexp(lr, vocab, inv_temp, &m, &s);
    float l = m + logf(s);
    if (threadIdx.x == 0) {
        lse[r] = l;
        int t = targets[r];
        if (has_ignore && (long long)t == ignore_index) logp[r] = 0.f;
        else if (t < 0 || t >= vocab) logp[r] = QNAN;
        else logp[r] = ld(lr + t) * inv_temp - l;
    }
}

template <typename T>
__device__ void logprobs_bwd_impl(const T* logits, const int* targets, const float* lse, const float* dlogp,
                                  float scale, T* dlogits, int rows, int vocab, long long ignore_index,
                                  int has_ignore, float inv_temp) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const T* lr = logits + (i64)r * vocab;
    T* dr = dlogits + (i64)r * vocab;
    int t = targets[r];
    if (has_ignore && (long long)t == ignore_index) {
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) st(dr + j, 0.f);
        return;
    }
    float l = lse[r], gr = scale * (dlogp ? dlogp[r] : 1.0f) * inv_temp;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        float p = expf(ld(lr + j) * inv_temp - l);
        st(dr + j, gr * ((j == t ? 1.f : 0.f) - p));
    }
}

// out[r,:] = softmax(x[r,:] * inv_temp). out may alias x.
template <typename T>
__device__ void softmax_impl(const T* x, T* out, int rows, int vocab, float inv_temp) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const T* xr = x + (i64)r * vocab;
    T* o = out + (i64)r * vocab;
    float m, s;
    row_max_sumexp(xr, vocab, inv_temp, &m, &s);
    float inv_s = 1.0f / s;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) st(o + j, expf(ld(xr + j) * inv_temp - m) * inv_s);
}

#define LOGPROBS(T, S)                                                                                         \
    extern "C" __global__ void __launch_bounds__(1024)                                                         \
        logprobs_fwd_##S(const T* logits, const int* targets, float* logp, float* lse, int rows, int vocab,    \
                         long long ignore_index, int has_ignore, float inv_temp) {                             \
        logprobs_fwd_impl(logits, targets, logp, lse, rows, vocab, ignore_index, has_ignore, inv_temp);        \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(1024)                                                         \
        logprobs_bwd_##S(const T* logits, const int* targets, const float* lse, const float* dlogp,            \
                         float scale, T* dlogits, int rows, int vocab, long long ignore_index, int has_ignore, \
                         float inv_temp) {                                                                     \
        logprobs_bwd_impl(logits, targets, lse, dlogp, scale, dlogits, rows, vocab, ignore_index, has_ignore,  \
                          inv_temp);                                                                           \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(1024)                                                         \
        softmax_##S(const T* x, T* out, int rows, int vocab, float inv_temp) {                                 \
        softmax_impl(x, out, rows, vocab, inv_temp);                                                           \
    }
FOR_FLOAT_TYPES(LOGPROBS)
