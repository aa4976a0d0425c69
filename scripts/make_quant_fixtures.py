#!/usr/bin/env python3
"""Golden dequantization fixtures for tests/unit/quant_test.cc, computed by the `gguf` package.

Writes tests/fixtures/quant/<type>.blocks (raw GGUF blocks) and <type>.f32 (gguf.quants'
dequantization, little-endian float32). Q4_1 and Q8_0 blocks come from the SmolLM2 GGUF (a
real layer weight and token_embd); Q4_0, Q4_K and Q6_K blocks are seeded random bytes with
finite f16 scales. Run with /work/oracle-venv/bin/python from the repository root.
"""
import argparse
import pathlib

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "tests" / "fixtures" / "quant"

# (type, bytes per block, offsets of f16 scale fields to overwrite with finite values)
SYNTHETIC = {
    "q4_0": (T.Q4_0, 18, [0]),
    "q4_k": (T.Q4_K, 144, [0, 2]),
    "q6_k": (T.Q6_K, 210, [208]),
}


def real_blocks(reader, name, qtype, num_blocks, skip_blocks):
    tensor = next(t for t in reader.tensors if t.name == name)
    assert tensor.tensor_type == qtype, (name, tensor.tensor_type)
    raw = np.asarray(tensor.data).reshape(-1).view(np.uint8)
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    start = skip_blocks * type_size
    return raw[start:start + num_blocks * type_size].copy()


def synthetic_blocks(qtype, block_bytes, scale_offsets, num_blocks, rng):
    raw = rng.integers(0, 256, size=(num_blocks, block_bytes), dtype=np.uint8)
    for off in scale_offsets:
        scales = rng.uniform(0.0005, 0.05, size=num_blocks).astype(np.float16)
        raw[:, off:off + 2] = scales.view(np.uint8).reshape(num_blocks, 2)
    return raw.reshape(-1)


def write(name, qtype, raw):
    values = gguf.quants.dequantize(raw, qtype).astype("<f4").reshape(-1)
    (OUT / f"{name}.blocks").write_bytes(raw.tobytes())
    (OUT / f"{name}.f32").write_bytes(values.tobytes())
    print(f"{name}: {raw.size} bytes -> {values.size} values")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    reader = gguf.GGUFReader(str(MODEL))
    write("q4_1", T.Q4_1, real_blocks(reader, "blk.3.ffn_down.weight", T.Q4_1, 64, 1000))
    write("q8_0", T.Q8_0, real_blocks(reader, "token_embd.weight", T.Q8_0, 64, 5000))
    for name, (qtype, block_bytes, offsets) in SYNTHETIC.items():
        num_blocks = 8 if qtype in (T.Q4_K, T.Q6_K) else 64
        write(name, qtype, synthetic_blocks(qtype, block_bytes, offsets, num_blocks, rng))


if __name__ == "__main__":
    main()
