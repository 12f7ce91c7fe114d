// SwiGLU: h = silu(gate) * up, all [n]. Backward: dgate = dh*up*s*(1 + g*(1-s)), dup = dh*g*s,
// s = sigmoid(g). dgate/dup may alias gate/up (each element is read before it is written).
__device__ __forceinline__ float sigmoidf_(float g) { return 1.0f / (1.0f + expf(-g)); }

template <typename T>
__device__ void swiglu_fwd_impl(const T* gate, const T* up, T* h, i64 n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        float g = ld(gate + i);
        st(h + i, g * sigmoidf_(g) * ld(up + i));
    }
}
template <typename T>
__device__ void swiglu_bwd_impl(const T* gate, const T* up, const T* dh, T* dgate, T* dup, i64 n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        float g = ld(gate + i), u = ld(up + i), d = ld(dh + i);
        float s = sigmoidf_(g);
        st(dgate + i, d * u * s * (1.0f + g * (1.0f - s)));
        st(dup + i, d * g * s);
    }
}

#define SWIGLU(T, S)                                                                                            \
    extern "C" __global__ void __launch_bounds__(256) swiglu_fwd_##S(const T* gate, const T* up, T* h, i64 n) { \
        swiglu_fwd_impl(gate, up, h, n);                                                                        \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(256)                                                           \
        swiglu_bwd_##S(const T* gate, const T* up, const T* dh, T* dgate, T* dup, i64 n) {                      \
        swiglu_bwd_impl(gate, up, dh, dgate, dup, n);                                                           \
    }
FOR_FLOAT_TYPES(SWIGLU)
