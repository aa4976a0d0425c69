#!/usr/bin/env python3
"""The peer of bench/model_decode_bench: one decode step of a Llama-3-8B-shaped model with
random weights in PyTorch eager (cuBLAS matmuls, scaled_dot_product_attention), same shapes,
same weight dtype, an f16 KV cache of --context tokens, batch 1. Prints one JSON object with
the median step time, so gpu_check can report Tessera's step time as a ratio to it.

  python3 bench/torch_decode_peer.py --device cuda                 (H200: 32 layers)
  python3 bench/torch_decode_peer.py --device cpu --layers 2       (a CPU rehearsal)

Weights are random (no checkpoint): the step's cost depends only on the shapes.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

HIDDEN, FFN, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 4096, 14336, 32, 8, 128, 128256


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype) * w


def rope(x, pos, theta=500000.0):
    # x [1, heads, 1, D], neox pairing (i, i + D/2) as HF Llama.
    half = HEAD_DIM // 2
    inv = 1.0 / theta ** (torch.arange(0, half, device=x.device, dtype=torch.float32) / half)
    ang = pos * inv
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    args = ap.parse_args()
    dev = torch.device(args.device)
    wdt = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    torch.manual_seed(0)

    def w(*shape):
        return (torch.rand(*shape, device=dev, dtype=torch.float32) * 2 - 1).mul_(
            8.0 / shape[-1]).to(wdt)

    layers = []
    for _ in range(args.layers):
        layers.append(dict(
            n1=torch.ones(HIDDEN, device=dev, dtype=wdt), n2=torch.ones(HIDDEN, device=dev, dtype=wdt),
            q=w(HEADS * HEAD_DIM, HIDDEN), k=w(KV_HEADS * HEAD_DIM, HIDDEN),
            v=w(KV_HEADS * HEAD_DIM, HIDDEN), o=w(HIDDEN, HEADS * HEAD_DIM),
            g=w(FFN, HIDDEN), u=w(FFN, HIDDEN), d=w(HIDDEN, FFN)))
    embed, head, norm = w(VOCAB, HIDDEN), w(VOCAB, HIDDEN), torch.ones(HIDDEN, device=dev, dtype=wdt)
    max_ctx = args.context + args.decode + 1
    # KV cache [layers, 2, KV_HEADS, max_ctx, D] in f16, the first --context rows random.
    cache = torch.zeros(args.layers, 2, KV_HEADS, max_ctx, HEAD_DIM, device=dev, dtype=torch.float16)
    cache[:, :, :, : args.context].uniform_(-1, 1)

    def step(token, pos):
        x = embed[token].view(1, HIDDEN)
        for i, l in enumerate(layers):
            h = rms_norm(x, l["n1"])
            q = F.linear(h, l["q"]).view(1, 1, HEADS, HEAD_DIM).transpose(1, 2)
            k = F.linear(h, l["k"]).view(1, 1, KV_HEADS, HEAD_DIM).transpose(1, 2)
            v = F.linear(h, l["v"]).view(1, 1, KV_HEADS, HEAD_DIM).transpose(1, 2)
            q, k = rope(q, pos), rope(k, pos)
            cache[i, 0, :, pos] = k[0, :, 0].to(torch.float16)
            cache[i, 1, :, pos] = v[0, :, 0].to(torch.float16)
            kk = cache[i, 0, :, : pos + 1].unsqueeze(0).to(wdt)
            vv = cache[i, 1, :, : pos + 1].unsqueeze(0).to(wdt)
            kk = kk.repeat_interleave(HEADS // KV_HEADS, dim=1)
            vv = vv.repeat_interleave(HEADS // KV_HEADS, dim=1)
            a = F.scaled_dot_product_attention(q, kk, vv).transpose(1, 2).reshape(1, HIDDEN)
            x = x + F.linear(a, l["o"])
            h = rms_norm(x, l["n2"])
            x = x + F.linear(F.silu(F.linear(h, l["g"])) * F.linear(h, l["u"]), l["d"])
        logits = F.linear(rms_norm(x, norm), head).float()
        return int(logits.argmax())

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    token, times = 1, []
    with torch.inference_mode():
        token = step(token, args.context)  # warm-up (kernels, allocator)
        for i in range(args.decode):
            sync()
            t0 = time.perf_counter()
            token = step(token, args.context + 1 + i)  # argmax syncs: the step includes it
            times.append(time.perf_counter() - t0)
    print(json.dumps({
        "bench": "model_decode_peer", "peer": f"torch {torch.__version__} eager",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "layers": args.layers, "weight_dtype": args.dtype, "kv_dtype": "f16",
        "context": args.context, "decode_step_ms_median": statistics.median(times) * 1e3,
        "decode_step_ms_best": min(times) * 1e3,
    }))


if __name__ == "__main__":
    main()
