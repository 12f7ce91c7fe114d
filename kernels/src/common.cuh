// Shared prelude, prepended to every kernel source before NVRTC sees it.
// Header-free on purpose: the device image's NVRTC may have no CUDA include folder,
// so bf16/f16 conversions go through inline PTX instead of cuda_bf16.h.
typedef long long i64;

struct bf16 { unsigned short bits; };
struct f16 { unsigned short bits; };

__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const bf16* p) { return __uint_as_float(((unsigned int)p->bits) << 16); }
__device__ __forceinline__ float ld(const f16* p) {
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(p->bits));
    return r;
}
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(bf16* p, float v) {
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(v));
    p->bits = r;
}
__device__ __forceinline__ void st(f16* p, float v) {
    unsigned short r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(v));
    p->bits = r;
}

#define NEG_INF __int_as_float(0xff800000)
#define QNAN __int_as_float(0x7fc00000)

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Every thread of the block gets the total. blockDim.x must be a multiple of 32.
// The leading barrier lets callers reuse it back to back without a race on `sh`.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    return warp_sum(lane < nw ? sh[lane] : 0.f);
}
__device__ __forceinline__ float block_max(float v) {
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    return warp_max(lane < nw ? sh[lane] : NEG_INF);
}

// Instantiates X(T, suffix) for every float storage type the runtime has.
#define FOR_FLOAT_TYPES(X) X(float, f32) X(bf16, bf16) X(f16, f16)
