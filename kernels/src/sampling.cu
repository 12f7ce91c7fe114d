// Sampling one token per row from logits [rows, vocab] with temperature, top-k and top-p, with
// the runtime's CPU semantics (runtime/src/sample.rs, HF warpers). The host draws one uniform u
// in [0,1) per row from its seeded RNG, so CPU and GPU pick the same token for the same stream.
// temperature <= 0: greedy (lowest index among ties).
// top_k > 0: keep tokens whose value is >= the k-th largest (ties kept).
// top_p < 1: order the kept tokens by (value, index) descending; keep each while the mass before
// it is < top_p of the kept mass (HF: drop where the ascending cumulative prob <= 1 - top_p).
// The token is the first index, in vocabulary order, whose running kept mass exceeds u * mass.
// Thresholds come from a 32-step bitwise search over order-preserving float keys: 32 passes
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
    int tie_min_index = 0;  // among tokens whose key == thr, only indices >= this are kept
    if (top_p < 1.0f) {
        // thr: the largest key whose kept mass at or above it reaches top_p (the last kept value).
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
        // Ties at thr are visited from the highest index down; each is kept while the mass
        // before it is < want: keep the ceil((want - above) / e) highest-index ties.
        float above = 0.f, e_thr = 0.f, n_ties = 0.f;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            float z = ld(lr + j) * inv_t;
            unsigned int k = order_key(z);
            if (k > thr) above += expf(z - m);
            if (k == thr) {
                e_thr = expf(z - m);
                n_ties += 1.f;
            }
        }
        above = block_sum(above);
        n_ties = block_sum(n_ties);
        e_thr = block_max(e_thr);
        int keep = e_thr > 0.f ? (int)ceilf((want - above) / e_thr) : (int)n_ties;
        keep = keep < 1 ? 1 : (keep > (int)n_ties ? (int)n_ties : keep);
        if (keep < (int)n_ties) {
            // The keep-th tie from the top, by index: bitwise search for the largest index i with
            // count(ties with index >= i) >= keep.
            int lo = 0;
            for (int bit = 30; bit >= 0; bit--) {
                int cand = lo | (1 << bit);
                float cnt = 0.f;
                for (int j = threadIdx.x; j < vocab; j += blockDim.x)
                    cnt += (j >= cand && order_key(ld(lr + j) * inv_t) == thr) ? 1.f : 0.f;
                if (block_sum(cnt) >= (float)keep) lo = cand;
            }
            tie_min_index = lo;
        }
        mass = 0.f;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            float z = ld(lr + j) * inv_t;
            unsigned int k = order_key(z);
            if (k > thr || (k == thr && j >= tie_min_index)) mass += expf(z - m);
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
            unsigned int k = order_key(z);
            if (k > thr || (k == thr && j >= tie_min_index)) {
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
FOR_FLOAT_TYPES(SAMPLE)
