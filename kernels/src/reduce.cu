// Deterministic two-stage reductions: a partial pass writes one f32 per block (a fixed grid,
// so the summation order is fixed), then reduce_final sums the partials in one block.
// The global L2 norm of many tensors runs one partial pass per tensor into one scratch buffer
// and a single final pass with sqrt.
template <typename T, bool SQUARE>
__device__ void partial_impl(const T* x, i64 n, float* partial) {
    float acc = 0.f;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        float v = ld(x + i);
        acc += SQUARE ? v * v : v;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

#define REDUCE(T, S)                                                                                    \
    extern "C" __global__ void __launch_bounds__(256) sum_partial_##S(const T* x, i64 n, float* partial) { \
        partial_impl<T, false>(x, n, partial);                                                          \
    }                                                                                                   \
    extern "C" __global__ void __launch_bounds__(256) sumsq_partial_##S(const T* x, i64 n, float* partial) { \
        partial_impl<T, true>(x, n, partial);                                                           \
    }
FOR_FLOAT_TYPES(REDUCE)

// out[0] = sum(partial) (take_sqrt = 0) or sqrt(sum(partial)) (take_sqrt = 1). One block.
extern "C" __global__ void __launch_bounds__(1024) reduce_final(const float* partial, int n, float* out, int take_sqrt) {
    float acc = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[0] = take_sqrt ? sqrtf(acc) : acc;
}
