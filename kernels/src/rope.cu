// Rotary embedding, rotate-half (Hugging Face Llama) layout.
// x, y: [tokens, heads, head_dim]; pos: [tokens] i32; cos_t, sin_t: [max_pos, head_dim/2] f32
// (built on the host, llama3 scaling included). sign = +1 forward, -1 backward (the inverse
// rotation). y may alias x. A position outside the table writes NaN so the bug cannot hide.
template <typename T>
__device__ void rope_impl(const T* x, T* y, const int* pos, const float* cos_t, const float* sin_t, int tokens,
                          int heads, int head_dim, int max_pos, float sign) {
    int half = head_dim >> 1;
    i64 total = (i64)tokens * heads * half;
    for (i64 p = (i64)blockIdx.x * blockDim.x + threadIdx.x; p < total; p += (i64)gridDim.x * blockDim.x) {
        int j = (int)(p % half);
        i64 th = p / half;
        int tok = (int)(th / heads);
        int ps = pos[tok];
        i64 base = th * head_dim;
        float a = ld(x + base + j), b = ld(x + base + j + half);
        if (ps < 0 || ps >= max_pos) {
            st(y + base + j, QNAN);
            st(y + base + j + half, QNAN);
            continue;
        }
        float c = cos_t[(i64)ps * half + j], s = sign * sin_t[(i64)ps * half + j];
        st(y + base + j, a * c - b * s);
        st(y + base + j + half, b * c + a * s);
    }
}

#define ROPE(T, S)                                                                                          \
    extern "C" __global__ void __launch_bounds__(256)                                                       \
        rope_##S(const T* x, T* y, const int* pos, const float* cos_t, const float* sin_t, int tokens,      \
                 int heads, int head_dim, int max_pos, float sign) {                                        \
        rope_impl(x, y, pos, cos_t, sin_t, tokens, heads, head_dim, max_pos, sign);                         \
    }
FOR_FLOAT_TYPES(ROPE)
