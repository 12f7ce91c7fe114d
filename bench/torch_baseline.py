#!/usr/bin/env python3
"""PyTorch baseline for `bench_kernels` (kernels/examples/bench_kernels.rs): the same ops on the
same shapes, eager PyTorch and SDPA, timed with CUDA events (3 warm-ups, median of --reps).
Rows use the same format so both runs of one device call line up in bench/RESULTS.md.

usage: python3 bench/torch_baseline.py [--reps N] [--quick]
"""
import argparse
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("bench torch: skipped, PyTorch is not installed")
    sys.exit(0)


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ms.append(a.elapsed_time(b))
    ms.sort()
    return ms[len(ms) // 2]


class Rows:
    def __init__(self):
        self.copy_gbs = 1.0

    def bytes(self, name, shape, ms, nbytes):
        gbs = nbytes / ms / 1e6
        print(f"bench torch   | {name:<22} | {shape:<28} | {ms:>9.4f} ms | {gbs:>8.1f} GB/s | "
              f"{100 * gbs / self.copy_gbs:>5.1f}% of copy", flush=True)

    def flops(self, name, shape, ms, flops):
        print(f"bench torch   | {name:<22} | {shape:<28} | {ms:>9.4f} ms | {flops / ms / 1e9:>8.1f} TFLOP/s",
              flush=True)


def rand(*shape, dtype=torch.bfloat16, scale=1.0):
    return ((torch.rand(*shape, device="cuda") * 2 - 1) * scale).to(dtype)


def rmsnorm(x, w, eps=1e-5):
    # Hugging Face LlamaRMSNorm.
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * xf.to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench torch: skipped, no CUDA device")
        return
    div = 8 if args.quick else 1
    reps = args.reps
    r = Rows()
    print(f"bench torch   | device {torch.cuda.get_device_name()} | torch {torch.__version__} | cuda {torch.version.cuda}")

    n = (1 << 28) // div
    src, dst = rand(n, dtype=torch.float32), rand(n, dtype=torch.float32)
    ms = timed(lambda: dst.copy_(src), reps)
    r.copy_gbs = 8 * n / ms / 1e6
    r.bytes("copy (ceiling)", f"{n} f32", ms, 8 * n)
    del src, dst

    tok, d, ffn, vocab = 8192 // div, 4096, 14336, 128256
    x = rand(tok, d, scale=2.0).requires_grad_()
    w = rand(d).requires_grad_()
    dy = rand(tok, d)
    ms = timed(lambda: rmsnorm(x, w), reps)
    r.bytes("rmsnorm_fwd eager", f"{tok}x{d}", ms, 4 * tok * d)
    ms = timed(lambda: F.rms_norm(x, (d,), w, 1e-5), reps)
    r.bytes("rmsnorm_fwd F.rms_norm", f"{tok}x{d}", ms, 4 * tok * d)
    y = rmsnorm(x, w)
    ms = timed(lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True), reps)
    r.bytes("rmsnorm_bwd eager", f"{tok}x{d}", ms, 6 * tok * d)

    with torch.no_grad():
        q = rand(tok, 32, 128)
        inv = 1.0 / (500000.0 ** (torch.arange(0, 128, 2, device="cuda").float() / 128))
        pos = torch.arange(tok, device="cuda").float()
        emb = torch.cat([torch.outer(pos, inv)] * 2, dim=-1)
        cos, sin = emb.cos()[:, None, :].bfloat16(), emb.sin()[:, None, :].bfloat16()
        ms = timed(lambda: q * cos + rotate_half(q) * sin, reps)
        r.bytes("rope_fwd eager", f"{tok}x32x128", ms, 4 * tok * d)

        table = rand(vocab, d)
        ids = (torch.arange(tok, device="cuda") * 7919) % vocab
        ms = timed(lambda: F.embedding(ids, table), reps)
        r.bytes("embedding_fwd", f"{tok}x{d}", ms, 4 * tok * d)
        del table

    g = rand(tok, ffn, scale=4.0).requires_grad_()
    u = rand(tok, ffn, scale=2.0).requires_grad_()
    ms = timed(lambda: F.silu(g) * u, reps)
    r.bytes("swiglu_fwd eager", f"{tok}x{ffn}", ms, 6 * tok * ffn)
    h = F.silu(g) * u
    dh = rand(tok, ffn)
    ms = timed(lambda: torch.autograd.grad(h, (g, u), dh, retain_graph=True), reps)
    r.bytes("swiglu_bwd eager", f"{tok}x{ffn}", ms, 10 * tok * ffn)
    del g, u, h, dh

    rows = 2048 // div
    logits = rand(rows, vocab, scale=8.0).requires_grad_()
    targets = (torch.arange(rows, device="cuda") * 31) % vocab
    ms = timed(lambda: F.cross_entropy(logits, targets, reduction="none"), reps)
    r.bytes("logprobs_fwd (F.cross_entropy)", f"{rows}x{vocab}", ms, 2 * rows * vocab)
    ms = timed(lambda: F.cross_entropy(logits.float(), targets, reduction="none"), reps)
    r.bytes("logprobs_fwd f32 upcast", f"{rows}x{vocab}", ms, 2 * rows * vocab)
    loss = F.cross_entropy(logits, targets, reduction="none")
    gl = torch.rand(rows, device="cuda")
    ms = timed(lambda: torch.autograd.grad(loss, logits, gl, retain_graph=True), reps)
    r.bytes("logprobs_bwd (autograd)", f"{rows}x{vocab}", ms, 4 * rows * vocab)

    with torch.no_grad():
        srows = min(64, rows)
        sl = logits[:srows].detach()

        def top_p():
            probs = torch.softmax(sl.float() / 0.7, dim=-1)
            sp, si = probs.sort(dim=-1, descending=True)
            keep = sp.cumsum(-1) - sp < 0.95
            sp = sp * keep
            pick = torch.multinomial(sp, 1)
            return si.gather(-1, pick)

        ms = timed(top_p, reps)
        r.bytes("sample top-p", f"{srows}x{vocab}", ms, 2 * srows * vocab)
    del logits, loss

    with torch.no_grad():
        n = (1 << 28) // div
        xf = rand(n, dtype=torch.float32)
        ms = timed(lambda: xf.to(torch.bfloat16), reps)
        r.bytes("cast f32->bf16", f"{n}", ms, 6 * n)
        ms = timed(lambda: torch.linalg.vector_norm(xf), reps)
        r.bytes("global_norm f32", f"{n}", ms, 4 * n)
        del xf

    n = (1 << 26) // div
    p = torch.nn.Parameter(rand(n, dtype=torch.float32))
    p.grad = rand(n, dtype=torch.float32)
    opt = torch.optim.AdamW([p], lr=1e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
    ms = timed(opt.step, reps)
    r.bytes("adamw fused (no copy)", f"{n}", ms, 28 * n)
    del p, opt

    with torch.no_grad():
        t = 2048 // div
        q = rand(1, 32, t, 128)
        k = rand(1, 8, t, 128)
        v = rand(1, 8, t, 128)
        flops = 4 * 32 * t * t / 2 * 128
        ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), reps)
        r.flops("attention_fwd SDPA", f"1x{t}x32/8x128 causal", ms, flops)
        mask = torch.full((t, t), float("-inf"), device="cuda").triu(1)

        def eager():
            kk = k.repeat_interleave(4, dim=1)
            vv = v.repeat_interleave(4, dim=1)
            s = (q @ kk.transpose(-1, -2)).float() * 128 ** -0.5 + mask
            return torch.softmax(s, -1).to(q.dtype) @ vv

        ms = timed(eager, reps)
        r.flops("attention_fwd eager", f"1x{t}x32/8x128 causal", ms, flops)

        for m, n, k in [(8192 // div, 8192, 8192), (8192 // div, 4096, 4096), (8192 // div, 14336, 4096)]:
            a = rand(m, k)
            b = rand(n, k)
            ms = timed(lambda: a @ b.T, reps)
            r.flops("torch matmul bf16", f"{m}x{n}x{k} (B^T)", ms, 2 * m * n * k)


if __name__ == "__main__":
    main()
