// Elementwise ops on one dtype, n elements, grid-stride (f32 math, one rounding):
// add: out = a + b; mul: out = a * b; scale: out = s * x (out may alias x); axpy: y += alpha * x.
// kv_cache_write: copies new [B, T, R] (R = Hkv*D) into cache [B, S_max, R] at rows
// starts[b] .. starts[b] + T of each sequence; rows that would fall outside the cache are skipped.
#define GRID_STRIDE(n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

#define ELEMENTWISE(T, S)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256) add_##S(const T* a, const T* b, T* out, i64 n) {     \
        GRID_STRIDE(n) st(out + i, ld(a + i) + ld(b + i));                                                  \
    }                                                                                                       \
    extern "C" __global__ void __launch_bounds__(256) mul_##S(const T* a, const T* b, T* out, i64 n) {     \
        GRID_STRIDE(n) st(out + i, ld(a + i) * ld(b + i));                                                  \
    }                                                                                                       \
    extern "C" __global__ void __launch_bounds__(256) scale_##S(const T* x, T* out, float s, i64 n) {      \
        GRID_STRIDE(n) st(out + i, s * ld(x + i));                                                          \
    }                                                                                                       \
    extern "C" __global__ void __launch_bounds__(256) axpy_##S(T* y, float alpha, const T* x, i64 n) {     \
        GRID_STRIDE(n) st(y + i, ld(y + i) + alpha * ld(x + i));                                            \
    }                                                                                                       \
    extern "C" __global__ void __launch_bounds__(256)                                                       \
        kv_cache_write_##S(T* cache, const T* nw, const int* starts, int B, int T_, int S_max, i64 R) {     \
        GRID_STRIDE((i64)B * T_ * R) {                                                                      \
            i64 row = i / R;                                                                                \
            int b = (int)(row / T_), t = (int)(row % T_);                                                   \
            int dst = starts[b] + t;                                                                        \
            if (dst < 0 || dst >= S_max) continue;                                                          \
            cache[((i64)b * S_max + dst) * R + i % R] = nw[i];                                              \
        }                                                                                                   \
    }
FOR_FLOAT_TYPES(ELEMENTWISE)
