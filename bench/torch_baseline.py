#!/usr/bin/env python3
"""PyTorch baseline for `swerl bench kernels`: the same ops at the same shapes, timed the same
way (best of three batches of --reps back-to-back calls, each batch closed by a device sync),
printed in the same row format so the two tables compare line by line. Eager PyTorch for every
op; attention both eager (matmul + mask + softmax + matmul, repeat_kv) and SDPA.

usage: python3 bench/torch_baseline.py [--device cuda|cpu] [--size full|small|tiny]
                                       [--dtype bf16|f32] [--reps N] [--json]
"""

import argparse
import json
import math
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("bench kernels | torch baseline skipped: PyTorch is not installed")
    sys.exit(0)

SHAPES = {
    "full": dict(rows=8192, d=4096, ffn=14336, heads=32, kv_heads=8, head_dim=128, seq=2048,
                 vocab=128256, lp_rows=2048, adamw=1 << 26,
                 gemm=[(8192, 8192, 8192), (8192, 4096, 4096), (8192, 14336, 4096)]),
    "small": dict(rows=1024, d=1024, ffn=3584, heads=16, kv_heads=4, head_dim=64, seq=512,
                  vocab=32000, lp_rows=256, adamw=1 << 22,
                  gemm=[(1024, 1024, 1024), (1024, 3584, 1024)]),
    "tiny": dict(rows=16, d=64, ffn=176, heads=4, kv_heads=2, head_dim=16, seq=16, vocab=512,
                 lp_rows=8, adamw=4096, gemm=[(16, 64, 64)]),
}


class Bench:
    def __init__(self, dev, reps, as_json):
        self.dev, self.reps, self.json = dev, reps, as_json
        self.copy_bps = None
        self.gen = torch.Generator(device="cpu").manual_seed(0x5EED)

    def rand(self, shape, dtype, a=1.0):
        t = (torch.rand(shape, generator=self.gen) * 2 - 1) * a
        return t.to(device=self.dev, dtype=dtype)

    def ids(self, n, below):
        return torch.randint(0, below, (n,), generator=self.gen).to(self.dev)

    def sync(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    def time(self, f):
        f()
        self.sync()
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(self.reps):
                f()
            self.sync()
            best = min(best, (time.perf_counter() - t0) / self.reps)
        return best

    def row(self, name, shape, s, rate, unit, ceiling):
        pct = None if ceiling is None else 100.0 * rate / ceiling
        if self.json:
            print(json.dumps(dict(bench="kernels", impl="torch", device=str(self.dev), name=name,
                                  shape=shape, ms=s * 1e3, rate=rate, unit=unit,
                                  ceiling=ceiling, pct_of_ceiling=pct)))
            return
        c = "%9s" % "-" if ceiling is None else "%9.1f" % ceiling
        p = "%6s" % "-" if pct is None else "%5.1f%%" % pct
        print("bench kernels | %-20s | %-26s | %10.4f ms | %9.1f %-7s | ceiling %s | %s"
              % (name, shape, s * 1e3, rate, unit, c, p))

    def mem(self, name, shape, nbytes, f):
        s = self.time(f)
        self.row(name, shape, s, nbytes / s / 1e9, "GB/s", self.copy_bps / 1e9)


def memory_bound(b, sh, dt, es):
    r, d, f = sh["rows"], sh["d"], sh["ffn"]
    rd = "%dx%d" % (r, d)
    x = b.rand((r, d), dt, 2.0).requires_grad_()
    w = b.rand((d,), dt).requires_grad_()
    dy = b.rand((r, d), dt)
    nbytes = 2 * r * d * es
    with torch.no_grad():
        b.mem("rmsnorm_fwd", rd, nbytes, lambda: F.rms_norm(x, (d,), w, 1e-5))
    y = F.rms_norm(x, (d,), w, 1e-5)
    b.mem("rmsnorm_bwd", rd, 1.5 * nbytes,
          lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True))
    del x, w, dy, y

    h, hd = sh["heads"], sh["head_dim"]
    toks = r * d // (h * hd)
    q = b.rand((toks, h, hd), dt)
    inv = 1.0 / (500000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(sh["seq"], dtype=torch.float32), inv)
    cos = torch.cat([ang.cos(), ang.cos()], -1).to(b.dev)
    sin = torch.cat([ang.sin(), ang.sin()], -1).to(b.dev)
    pos = b.ids(toks, sh["seq"])

    def rope():
        c, s = cos[pos].unsqueeze(1).to(dt), sin[pos].unsqueeze(1).to(dt)
        rot = torch.cat([-q[..., hd // 2:], q[..., : hd // 2]], -1)
        q.copy_(q * c + rot * s)  # HF apply_rotary_pos_emb, written back in place

    b.mem("rope (in place)", "%dx%dx%d" % (toks, h, hd), nbytes, rope)
    del q

    table = b.rand((sh["vocab"], d), dt)
    ids = b.ids(r, sh["vocab"])
    b.mem("embedding_fwd", rd, nbytes, lambda: F.embedding(ids, table))
    del table

    rf = "%dx%d" % (r, f)
    g = b.rand((r, f), dt, 4.0).requires_grad_()
    u = b.rand((r, f), dt, 2.0).requires_grad_()
    nf = r * f * es
    with torch.no_grad():
        b.mem("swiglu_fwd", rf, 3 * nf, lambda: F.silu(g) * u)
    hout = F.silu(g) * u
    dh = b.rand((r, f), dt)
    b.mem("swiglu_bwd", rf, 5 * nf,
          lambda: torch.autograd.grad(hout, (g, u), dh, retain_graph=True))
    del g, u, hout, dh

    lr, v = sh["lp_rows"], sh["vocab"]
    logits = b.rand((lr, v), dt, 8.0).requires_grad_()
    tg = b.ids(lr, v)
    shape = "%dx%d" % (lr, v)
    lv = lr * v * es

    def logp_of(z):  # what TRL does: f32 log-softmax, then gather
        return torch.log_softmax(z.float(), -1).gather(-1, tg[:, None]).squeeze(-1)

    with torch.no_grad():
        b.mem("logprobs_fwd", shape, lv, lambda: logp_of(logits))
    lp = logp_of(logits)
    g_lp = b.rand((lr,), torch.float32)
    b.mem("logprobs_bwd", shape, 2 * lv,
          lambda: torch.autograd.grad(lp, logits, g_lp, retain_graph=True))
    del logits, lp

    n = sh["adamw"]
    big = b.rand((n,), torch.float32)
    low = torch.empty(n, dtype=torch.bfloat16, device=b.dev)
    b.mem("cast f32->bf16", str(n), 6 * n, lambda: low.copy_(big))
    b.mem("sum_squares f32", str(n), 4 * n, lambda: torch.linalg.vector_norm(big))
    p = torch.nn.Parameter(b.rand((n,), torch.float32, 0.02))
    p.grad = b.rand((n,), torch.float32, 1e-3)
    fused = b.dev.type == "cuda"
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.01, fused=fused)
    b.mem("adamw f32", str(n), 28 * n, opt.step)

    def step_and_copy():
        opt.step()
        low.copy_(p.detach())

    b.mem("adamw f32+bf16 copy", str(n), 30 * n, step_and_copy)


def attention(b, sh, dt):
    t, h, kv, hd = sh["seq"], sh["heads"], sh["kv_heads"], sh["head_dim"]
    shape = "1x%dx%d/%dx%d causal" % (t, h, kv, hd)
    flops = 2.0 * h * t * t * hd
    # [B, H, T, D] as SDPA wants it.
    q = b.rand((1, h, t, hd), dt).requires_grad_()
    k = b.rand((1, kv, t, hd), dt).requires_grad_()
    v = b.rand((1, kv, t, hd), dt).requires_grad_()
    mask = torch.full((t, t), float("-inf"), device=b.dev).triu(1).to(dt)

    def eager(q, k, v):
        kk = k.repeat_interleave(h // kv, 1)
        vv = v.repeat_interleave(h // kv, 1)
        s = q @ kk.transpose(-1, -2) / math.sqrt(hd) + mask
        return torch.softmax(s.float(), -1).to(dt) @ vv

    def sdpa(q, k, v):
        kk = k.repeat_interleave(h // kv, 1)
        vv = v.repeat_interleave(h // kv, 1)
        return F.scaled_dot_product_attention(q, kk, vv, is_causal=True)

    for name, fn in (("eager", eager), ("sdpa", sdpa)):
        with torch.no_grad():
            s = b.time(lambda: fn(q, k, v))
        b.row("attention_fwd " + name, shape, s, flops / s / 1e12, "TFLOP/s", None)
        out = fn(q, k, v)
        dout = b.rand(out.shape, dt)
        s = b.time(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
        b.row("attention_bwd " + name, shape, s, 2.5 * flops / s / 1e12, "TFLOP/s", None)
        del out


def gemm(b, sh, dt):
    for m, n, k in sh["gemm"]:
        x = b.rand((m, k), dt)
        w = b.rand((n, k), dt)
        out = torch.empty((m, n), dtype=dt, device=b.dev)
        flops = 2.0 * m * n * k
        s = b.time(lambda: torch.matmul(x, w.t(), out=out))
        b.row("matmul x@W^T", "%dx%dx%d" % (m, n, k), s, flops / s / 1e12, "TFLOP/s", None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    dev = torch.device(a.device)
    size = a.size or ("small" if dev.type == "cpu" else "full")
    sh = SHAPES[size]
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    es = 2 if a.dtype == "bf16" else 4
    b = Bench(dev, a.reps, a.json)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    if not a.json:
        print("bench kernels | torch %s on %s | size %s | dtype %s | best of 3 x %d calls"
              % (torch.__version__, name, size, a.dtype, a.reps))
    n = sh["rows"] * sh["ffn"]
    src, dst = b.rand((n,), dt), torch.empty(n, dtype=dt, device=dev)
    s = b.time(lambda: dst.copy_(src))
    b.copy_bps = 2 * es * n / s
    b.row("copy (ceiling)", str(n), s, b.copy_bps / 1e9, "GB/s", b.copy_bps / 1e9)
    del src, dst
    memory_bound(b, sh, dt, es)
    attention(b, sh, dt)
    gemm(b, sh, dt)


if __name__ == "__main__":
    main()
