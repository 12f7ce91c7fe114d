// Embedding lookup. ids: [n] i32; table: [vocab, d]; out: [n, d]. One block per id; an id
// outside the table writes a NaN row (the launcher cannot read ids without a sync).
template <typename T>
__device__ void embedding_fwd_impl(const int* ids, const T* table, T* out, int n, int vocab, int d) {
    int r = blockIdx.x;
    if (r >= n) return;
    int id = ids[r];
    T* o = out + (i64)r * d;
    if (id < 0 || id >= vocab) {
        for (int i = threadIdx.x; i < d; i += blockDim.x) st(o + i, QNAN);
        return;
    }
    const T* t = table + (i64)id * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) st(o + i, ld(t + i));
}

// Scatter-add of dout rows into the f32 gradient table (accumulates; atomics, so the
// summation order of repeated ids is not fixed). Ids outside the table are skipped.
template <typename T>
__device__ void embedding_bwd_impl(const int* ids, const T* dout, float* dtable, int n, int vocab, int d) {
    int r = blockIdx.x;
    if (r >= n) return;
    int id = ids[r];
    if (id < 0 || id >= vocab) return;
    const T* g = dout + (i64)r * d;
    float* t = dtable + (i64)id * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) atomicAdd(t + i, ld(g + i));
}

#define EMBEDDING(T, S)                                                                                  \
    extern "C" __global__ void __launch_bounds__(256)                                                    \
        embedding_fwd_##S(const int* ids, const T* table, T* out, int n, int vocab, int d) {             \
        embedding_fwd_impl(ids, table, out, n, vocab, d);                                                \
    }                                                                                                    \
    extern "C" __global__ void __launch_bounds__(256)                                                    \
        embedding_bwd_##S(const int* ids, const T* dout, float* dtable, int n, int vocab, int d) {       \
        embedding_bwd_impl(ids, dout, dtable, n, vocab, d);                                              \
    }
FOR_FLOAT_TYPES(EMBEDDING)
