// Element casts between f32, bf16 and f16 (round to nearest even). n elements.
#define CAST(TI, SI, TO, SO)                                                                           \
    extern "C" __global__ void __launch_bounds__(256) cast_##SI##_##SO(const TI* x, TO* y, i64 n) {   \
        for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) \
            st(y + i, ld(x + i));                                                                      \
    }
CAST(float, f32, bf16, bf16)
CAST(bf16, bf16, float, f32)
CAST(float, f32, f16, f16)
CAST(f16, f16, float, f32)
CAST(bf16, bf16, f16, f16)
CAST(f16, f16, bf16, bf16)
