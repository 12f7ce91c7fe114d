// Element casts between f32, bf16 and f16 (round to nearest even), and i64 -> i32 index
// narrowing (values outside i32 become -1, which every index-taking kernel treats as invalid).
#define CAST(TI, SI, TO, SO)                                                                               \
    extern "C" __global__ void __launch_bounds__(256) cast_##SI##_##SO(const TI* x, TO* y, i64 n) {       \
        for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) \
            st(y + i, ld(x + i));                                                                          \
    }
CAST(float, f32, bf16, bf16)
CAST(bf16, bf16, float, f32)
CAST(float, f32, f16, f16)
CAST(f16, f16, float, f32)
CAST(bf16, bf16, f16, f16)
CAST(f16, f16, bf16, bf16)

extern "C" __global__ void __launch_bounds__(256) cast_i64_i32(const long long* x, int* y, i64 n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        long long v = x[i];
        y[i] = (v < -2147483648LL || v > 2147483647LL) ? -1 : (int)v;
    }
}
