#!/usr/bin/env python3
"""Golden fixture for the INT8 matmul (tests/ops/ops_cases_int8.cc, docs/ops.md "INT8 matmul").

torch quantises random f32 weights per output channel (w_scale = amax / 127, codes =
round(w / w_scale) clamped to [-127, 127], one code forced to -128), and computes W8A8 the
contract's way: per-row s = amax / 127, q = clamp(round_half_even(x / s), -127, 127) (0 for a
zero row), exact integer dots, out = (f32(dot) * s) * w_scale in f32; and weight-only as
(x @ f32(w)^T) * w_scale in double, rounded once to f32. x has a zero row and an outlier row.

Run: /work/oracle-venv/bin/python scripts/make_int8_fixtures.py   (writes tests/fixtures/int8/)
"""
import pathlib

import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "int8"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(20261129)
    m, n, k = 6, 24, 200
    w = torch.randn(n, k, generator=gen, dtype=torch.float32) * 0.05
    w_scale = w.abs().amax(dim=1) / 127.0
    codes = torch.round(w / w_scale[:, None]).clamp(-127, 127).to(torch.int8)
    codes[3, 5] = -128
    x = torch.randn(m, k, generator=gen, dtype=torch.float32)
    x[1] = 0.0
    x[2, ::23] *= 40.0
    # Per-token quantisation, f32 throughout (torch.round is half to even).
    s = x.abs().amax(dim=1) / torch.tensor(127.0, dtype=torch.float32)
    safe = torch.where(s == 0, torch.ones_like(s), s)
    q = torch.where(s[:, None] == 0, torch.zeros_like(x), torch.round(x / safe[:, None]))
    q = q.clamp(-127, 127).to(torch.int8)
    dot = (q.to(torch.int64)[:, None, :] * codes.to(torch.int64)[None, :, :]).sum(dim=-1)
    assert dot.abs().max() < 2**31
    out_w8a8 = (dot.to(torch.int32).to(torch.float32) * s[:, None]) * w_scale[None, :]
    out_wo = ((x.double() @ codes.double().T) * w_scale.double()[None, :]).to(torch.float32)
    save_file({"x": x, "w": codes, "w_scale": w_scale.contiguous(), "q": q, "x_scale": s,
               "out_w8a8": out_w8a8.contiguous(), "out_weight_only": out_wo.contiguous()},
              str(OUT / "int8_matmul.safetensors"))
    print(f"wrote {OUT / 'int8_matmul.safetensors'}")


if __name__ == "__main__":
    main()
