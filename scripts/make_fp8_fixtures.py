#!/usr/bin/env python3
"""Golden fixtures for the block-scaled FP8 matmul (tests/ops/ops_cases_fp8.cc).

torch quantises random weights block-wise the DeepSeek-V3 way (one f32 scale_inv per
block_n x block_k block = amax / 448, codes = (w / scale_inv) cast to float8_e4m3fn), and
computes torch's f32 matmul of the dequantised weight (w.float() * scale_inv broadcast over its
block, transformers' FP8Linear orientation). Written as safetensors so the C++ test also
exercises the loader: a 2-shard checkpoint whose weight and its `_scale_inv` live in different
shards, a single file with a non-default [32, 64] block, and the f32 value of all 256 e4m3 codes.

Run: /work/oracle-venv/bin/python scripts/make_fp8_fixtures.py   (writes tests/fixtures/fp8/)
"""
import json
import math
import pathlib

import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fp8"
E4M3_MAX = 448.0


def quantize_blockwise(w: torch.Tensor, bn: int, bk: int):
    n, k = w.shape
    sn, sk = math.ceil(n / bn), math.ceil(k / bk)
    codes = torch.empty(n, k, dtype=torch.float8_e4m3fn)
    scale_inv = torch.empty(sn, sk, dtype=torch.float32)
    for i in range(sn):
        for j in range(sk):
            blk = w[i * bn:(i + 1) * bn, j * bk:(j + 1) * bk]
            s = blk.abs().amax().clamp(min=1e-12) / E4M3_MAX
            scale_inv[i, j] = s
            codes[i * bn:(i + 1) * bn, j * bk:(j + 1) * bk] = (blk / s).to(torch.float8_e4m3fn)
    return codes, scale_inv


def dequantize(codes: torch.Tensor, scale_inv: torch.Tensor, bn: int, bk: int):
    n, k = codes.shape
    s = scale_inv.repeat_interleave(bn, dim=0)[:n].repeat_interleave(bk, dim=1)[:, :k]
    return codes.to(torch.float32) * s


def make_case(gen, m, n, k, bn, bk):
    w = torch.randn(n, k, generator=gen, dtype=torch.float32) * 0.05
    # A few outlier columns, as real checkpoints have, so block scales differ.
    w[:, ::37] *= 6.0
    codes, scale_inv = quantize_blockwise(w, bn, bk)
    x = torch.randn(m, k, generator=gen, dtype=torch.float32)
    out = x @ dequantize(codes, scale_inv, bn, bk).T
    return codes, scale_inv, x, out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(20240607)

    # All 256 codes through torch's own float8_e4m3fn -> f32 conversion.
    codes = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn)
    save_file({"values": codes.to(torch.float32)}, str(OUT / "e4m3_codes.safetensors"))

    # Sharded checkpoint, 128 x 128 blocks, partial edge blocks on both dims.
    codes, scale_inv, x, out = make_case(gen, 5, 300, 260, 128, 128)
    name = "model.layers.0.mlp.down_proj.weight"
    shard1 = "model-00001-of-00002.safetensors"
    shard2 = "model-00002-of-00002.safetensors"
    save_file({name: codes, "x": x}, str(OUT / shard1))
    save_file({name + "_scale_inv": scale_inv, "out": out}, str(OUT / shard2))
    index = {
        "metadata": {"total_size": codes.numel() + 4 * (scale_inv.numel() + x.numel() + out.numel())},
        "weight_map": {name: shard1, "x": shard1, name + "_scale_inv": shard2, "out": shard2},
    }
    (OUT / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")

    # Single file, non-default block [block_n, block_k] = [32, 64].
    codes, scale_inv, x, out = make_case(gen, 3, 70, 90, 32, 64)
    save_file({"proj.weight": codes, "proj.weight_scale_inv": scale_inv, "x": x, "out": out},
              str(OUT / "block32x64.safetensors"), metadata={"weight_block_size": "32,64"})
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
