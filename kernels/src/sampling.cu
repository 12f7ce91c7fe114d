// Sampling one token per row from logits [rows, vocab] with temperature, top-k and top-p.
// The host draws one uniform u in [0,1) per row from its seeded RNG, so CPU and GPU pick the
// same token for the same stream. temperature <= 0: greedy (lowest index among ties).
// Kept set: tokens whose value is >= the k-th largest value (top_k > 0; ties kept), then the
// fewest top values whose softmax mass reaches top_p of the kept mass (top_p < 1; ties kept).
// The token is the first index, in vocabulary order, whose running kept mass exceeds u * mass.
// Thresholds are found by a 32-step bitwise search over order-preserving float keys: 32 passes
// over the row, correct for any vocabulary size, not fast. One 1024-thread block per row.
__device__ __forceinline__ unsigned int order_key(float f) {
    unsigned int b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ int block_min_int(int v) {
    __shared__ int sh;
    __syncthreads();
    if (threadIdx.x == 0) sh = 0x7fffffff;
    __syncthreads();
    atomicMin(&sh, v);
    __syncthreads();
    return sh;
}

// Inclusive prefix sum over the block; every thread gets its own prefix and the block total.
__device__ __forceinline__ float block_scan(float v, float* total) {
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        float t = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += t;
    }
    __syncthreads();
    if (lane == 31) sh[wid] = v;
    __syncthreads();
    float w = lane < nw ? sh[lane] : 0.f;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        float t = __shfl_up_sync(0xffffffffu, w, o);
        if (lane >= o) w += t;
    }
    // w now holds, in lane i, the sum of warps 0..i.
    float before = __shfl_sync(0xffffffffu, w, wid == 0 ? 0 : wid - 1);
    if (wid > 0) v += before;
    *total = __shfl_sync(0xffffffffu, w, nw - 1);
    return v;
}

template <typename T>
__device__ void sample_impl(const T* logits, const float* uniforms, int* out, int rows, int vocab, float temperature,
                            int top_k, float top_p) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const T* lr = logits + (i64)r * vocab;
    if (temperature <= 0.f) {
        float m = NEG_INF;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, ld(lr + j));
        m = block_max(m);
        int best = 0x7fffffff;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x)
            if (ld(lr + j) == m && j < best) best = j;
        best = block_min_int(best);
        if (threadIdx.x == 0) out[r] = best == 0x7fffffff ? 0 : best;
        return;
    }
    float inv_t = 1.0f / temperature;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, ld(lr + j) * inv_t);
    m = block_max(m);

    unsigned int kth = 0;
    if (top_k > 0 && top_k < vocab) {
        for (int bit = 31; bit >= 0; bit--) {
            unsigned int cand = kth | (1u << bit);
            float cnt = 0.f;
            for (int j = threadIdx.x; j < vocab; j += blockDim.x) cnt += order_key(ld(lr + j) * inv_t) >= cand ? 1.f : 0.f;
            if (block_sum(cnt) >= (float)top_k) kth = cand;
        }
    }
    float mass = 0.f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        float z = ld(lr + j) * inv_t;
        if (order_key(z) >= kth) mass += expf(z - m);
    }
    mass = block_sum(mass);
    unsigned int thr = kth;
    if (top_p < 1.0f) {
        float want = top_p * mass;
        unsigned int kp = 0;
        for (int bit = 31; bit >= 0; bit--) {
            unsigned int cand = kp | (1u << bit);
            float s = 0.f;
            for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
                float z = ld(lr + j) * inv_t;
                unsigned int k = order_key(z);
                if (k >= kth && k >= cand) s += expf(z - m);
            }
            if (block_sum(s) >= want) kp = cand;
        }
        thr = kp > kth ? kp : kth;
        mass = 0.f;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            float z = ld(lr + j) * inv_t;
            if (order_key(z) >= thr) mass += expf(z - m);
        }
        mass = block_sum(mass);
    }
    float target = uniforms[r] * mass;
    float base = 0.f;
    int found = 0x7fffffff, last = -1;
    for (int start = 0; start < vocab; start += blockDim.x) {
        int j = start + threadIdx.x;
        float e = 0.f;
        if (j < vocab) {
            float z = ld(lr + j) * inv_t;
            if (order_key(z) >= thr) {
                e = expf(z - m);
                last = j;
            }
        }
        float tile_total;
        float incl = base + block_scan(e, &tile_total);
        int cand = (e > 0.f && incl > target) ? j : 0x7fffffff;
        found = block_min_int(cand);
        if (found != 0x7fffffff) break;
        base += tile_total;
    }
    if (found == 0x7fffffff) {
        // Rounding left u * mass at the very end: the last kept token is the answer.
        last = -block_min_int(-last);
        found = last < 0 ? 0 : last;
    }
    if (threadIdx.x == 0) out[r] = found;
}

#define SAMPLE(T, S)                                                                                         \
    extern "C" __global__ void __launch_bounds__(1024) sample_##S(const T* logits, const float* uniforms,     \
                                                                  int* out, int rows, int vocab,             \
                                                                  float temperature, int top_k, float top_p) { \
        sample_impl(logits, uniforms, out, rows, vocab, temperature, top_k, top_p);                          \
    }
SAMPLE(float, f32)
SAMPLE(bf16, bf16)
