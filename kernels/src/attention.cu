// Causal grouped-query attention, correct and simple (one warp per row, no tiling).
// q, out, dout, dq: [B, T, Hq, D]; k, v, dk, dv: [B, S, Hkv, D]; lse, delta: [B, Hq, T] f32.
// Query t of sequence b sits at absolute position t + off_b and sees keys s <= t + off_b, with
// off_b = kv_lens[b] - T when kv_lens ([B] i32, KV-cache fill levels) is given, else q_offset.
// key_valid: [B, S] i32 (nonzero = attend) or null for no mask. lse may be null (decoding).
// Query head h reads kv head h / (Hq / Hkv). D <= 32 * ATT_MAXR.
// A row that sees no key gets out = 0 and lse = -inf.
#define ATT_MAXR 8

__device__ __forceinline__ int attn_offset(const int* kv_lens, int b, int T_, int q_offset) {
    return kv_lens ? kv_lens[b] - T_ : q_offset;
}

template <typename T>
__device__ void attn_fwd_impl(const T* q, const T* k, const T* v, const int* key_valid, const int* kv_lens, T* out, float* lse, int B,
                              int T_, int S, int Hq, int Hkv, int D, int q_offset, float scale) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (warp >= B * Hq * T_) return;
    int t = warp % T_, h = (warp / T_) % Hq, b = warp / (T_ * Hq);
    int hk = h / (Hq / Hkv);
    int off = attn_offset(kv_lens, b, T_, q_offset);
    const T* qr = q + (((i64)b * T_ + t) * Hq + h) * D;
    float qv[ATT_MAXR], acc[ATT_MAXR];
#pragma unroll
    for (int r = 0; r < ATT_MAXR; r++) {
        int d = lane + 32 * r;
        qv[r] = d < D ? ld(qr + d) * scale : 0.f;
        acc[r] = 0.f;
    }
    float m = NEG_INF, l = 0.f;
    int last = t + off < S - 1 ? t + off : S - 1;
    for (int s = 0; s <= last; s++) {
        if (key_valid && !key_valid[(i64)b * S + s]) continue;
        const T* kr = k + (((i64)b * S + s) * Hkv + hk) * D;
        const T* vr = v + (((i64)b * S + s) * Hkv + hk) * D;
        float dot = 0.f;
#pragma unroll
        for (int r = 0; r < ATT_MAXR; r++) {
            int d = lane + 32 * r;
            if (d < D) dot += qv[r] * ld(kr + d);
        }
        dot = warp_sum(dot);
        float mn = fmaxf(m, dot);
        float corr = expf(m - mn), p = expf(dot - mn);
        l = l * corr + p;
#pragma unroll
        for (int r = 0; r < ATT_MAXR; r++) {
            int d = lane + 32 * r;
            if (d < D) acc[r] = acc[r] * corr + p * ld(vr + d);
        }
        m = mn;
    }
    T* orow = out + (((i64)b * T_ + t) * Hq + h) * D;
    float inv_l = l > 0.f ? 1.0f / l : 0.f;
#pragma unroll
    for (int r = 0; r < ATT_MAXR; r++) {
        int d = lane + 32 * r;
        if (d < D) st(orow + d, acc[r] * inv_l);
    }
    if (lane == 0 && lse) lse[((i64)b * Hq + h) * T_ + t] = l > 0.f ? m + logf(l) : NEG_INF;
}

// dq for one query row; also writes delta = sum(dout * out), which attn_bwd_dkdv reads.
template <typename T>
__device__ void attn_bwd_dq_impl(const T* q, const T* k, const T* v, const int* key_valid, const int* kv_lens, const T* out,
                                 const T* dout, const float* lse, float* delta, T* dq, int B, int T_, int S, int Hq,
                                 int Hkv, int D, int q_offset, float scale) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (warp >= B * Hq * T_) return;
    int t = warp % T_, h = (warp / T_) % Hq, b = warp / (T_ * Hq);
    int hk = h / (Hq / Hkv);
    int off = attn_offset(kv_lens, b, T_, q_offset);
    i64 row = (((i64)b * T_ + t) * Hq + h) * D;
    float qv[ATT_MAXR], dov[ATT_MAXR], acc[ATT_MAXR];
    float dl = 0.f;
#pragma unroll
    for (int r = 0; r < ATT_MAXR; r++) {
        int d = lane + 32 * r;
        qv[r] = d < D ? ld(q + row + d) * scale : 0.f;
        dov[r] = d < D ? ld(dout + row + d) : 0.f;
        dl += d < D ? dov[r] * ld(out + row + d) : 0.f;
        acc[r] = 0.f;
    }
    dl = warp_sum(dl);
    i64 li = ((i64)b * Hq + h) * T_ + t;
    float L = lse[li];
    if (lane == 0) delta[li] = dl;
    int last = t + off < S - 1 ? t + off : S - 1;
    if (L != NEG_INF) {
        for (int s = 0; s <= last; s++) {
            if (key_valid && !key_valid[(i64)b * S + s]) continue;
            const T* kr = k + (((i64)b * S + s) * Hkv + hk) * D;
            const T* vr = v + (((i64)b * S + s) * Hkv + hk) * D;
            float dot = 0.f, dp = 0.f;
#pragma unroll
            for (int r = 0; r < ATT_MAXR; r++) {
                int d = lane + 32 * r;
                if (d < D) {
                    dot += qv[r] * ld(kr + d);
                    dp += dov[r] * ld(vr + d);
                }
            }
            dot = warp_sum(dot);
            dp = warp_sum(dp);
            float ds = expf(dot - L) * (dp - dl) * scale;
#pragma unroll
            for (int r = 0; r < ATT_MAXR; r++) {
                int d = lane + 32 * r;
                if (d < D) acc[r] += ds * ld(kr + d);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_MAXR; r++) {
        int d = lane + 32 * r;
        if (d < D) st(dq + row + d, acc[r]);
    }
}

// dk, dv for one key row, summed over every query head of its group and every query that sees it.
template <typename T>
__device__ void attn_bwd_dkdv_impl(const T* q, const T* k, const T* v, const int* key_valid, const int* kv_lens, const T* dout,
                                   const float* lse, const float* delta, T* dk, T* dv, int B, int T_, int S, int Hq,
                                   int Hkv, int D, int q_offset, float scale) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (warp >= B * Hkv * S) return;
    int s = warp % S, hk = (warp / S) % Hkv, b = warp / (S * Hkv);
    int group = Hq / Hkv;
    i64 krow = (((i64)b * S + s) * Hkv + hk) * D;
    float kv[ATT_MAXR], vv[ATT_MAXR], dka[ATT_MAXR], dva[ATT_MAXR];
#pragma unroll
    for (int r = 0; r < ATT_MAXR; r++) {
        int d = lane + 32 * r;
        kv[r] = d < D ? ld(k + krow + d) : 0.f;
        vv[r] = d < D ? ld(v + krow + d) : 0.f;
        dka[r] = 0.f;
        dva[r] = 0.f;
    }
    bool valid = !key_valid || key_valid[(i64)b * S + s];
    int off = attn_offset(kv_lens, b, T_, q_offset);
    int t0 = s - off > 0 ? s - off : 0;
    if (valid) {
        for (int g = 0; g < group; g++) {
            int h = hk * group + g;
            for (int t = t0; t < T_; t++) {
                i64 li = ((i64)b * Hq + h) * T_ + t;
                float L = lse[li];
                if (L == NEG_INF) continue;
                i64 row = (((i64)b * T_ + t) * Hq + h) * D;
                float dot = 0.f, dp = 0.f;
#pragma unroll
                for (int r = 0; r < ATT_MAXR; r++) {
                    int d = lane + 32 * r;
                    if (d < D) {
                        dot += ld(q + row + d) * kv[r];
                        dp += ld(dout + row + d) * vv[r];
                    }
                }
                dot = warp_sum(dot) * scale;
                dp = warp_sum(dp);
                float p = expf(dot - L);
                float ds = p * (dp - delta[li]) * scale;
#pragma unroll
                for (int r = 0; r < ATT_MAXR; r++) {
                    int d = lane + 32 * r;
                    if (d < D) {
                        dva[r] += p * ld(dout + row + d);
                        dka[r] += ds * ld(q + row + d);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_MAXR; r++) {
        int d = lane + 32 * r;
        if (d < D) {
            st(dk + krow + d, dka[r]);
            st(dv + krow + d, dva[r]);
        }
    }
}

#define ATTENTION(T, S_)                                                                                         \
    extern "C" __global__ void __launch_bounds__(128)                                                            \
        attention_fwd_##S_(const T* q, const T* k, const T* v, const int* key_valid, const int* kv_lens, T* out, float* lse, int B,  \
                           int T_, int S, int Hq, int Hkv, int D, int q_offset, float scale) {                   \
        attn_fwd_impl(q, k, v, key_valid, kv_lens, out, lse, B, T_, S, Hq, Hkv, D, q_offset, scale);                      \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(128) attention_bwd_dq_##S_(                                     \
        const T* q, const T* k, const T* v, const int* key_valid, const int* kv_lens, const T* out, const T* dout, const float* lse, \
        float* delta, T* dq, int B, int T_, int S, int Hq, int Hkv, int D, int q_offset, float scale) {          \
        attn_bwd_dq_impl(q, k, v, key_valid, kv_lens, out, dout, lse, delta, dq, B, T_, S, Hq, Hkv, D, q_offset, scale);  \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(128) attention_bwd_dkdv_##S_(                                   \
        const T* q, const T* k, const T* v, const int* key_valid, const int* kv_lens, const T* dout, const float* lse,               \
        const float* delta, T* dk, T* dv, int B, int T_, int S, int Hq, int Hkv, int D, int q_offset,            \
        float scale) {                                                                                           \
        attn_bwd_dkdv_impl(q, k, v, key_valid, kv_lens, dout, lse, delta, dk, dv, B, T_, S, Hq, Hkv, D, q_offset, scale); \
    }
FOR_FLOAT_TYPES(ATTENTION)
