#!/usr/bin/env python3
"""Fixtures for the GGUF / safetensors loaders, written and read back with the reference
Python packages (gguf, safetensors), so the C++ parsers are checked against outside tools.

Writes tests/fixtures/loaders/:
  tiny.gguf, tiny.expected.json         every metadata value type, f32/f16/q8_0/q4_1 tensors
  align64.gguf, align64.expected.json   general.alignment = 64
  deepseek2.gguf                        metadata-only deepseek2 file for ModelConfig::from_gguf
  tiny.safetensors, tiny.expected.json  (safetensors.numpy) with __metadata__
  sharded/                              2-shard checkpoint + model.safetensors.index.json
  smollm2_q4_1.expected.json            metadata/tensor infos of the real SmolLM2 GGUF (if present)
and copies the small files into tests/fuzz/corpus/fuzz_{gguf,safetensors}/ as seeds.
Run with the oracle venv:  /work/oracle-venv/bin/python scripts/make_loader_fixtures.py
"""
import json
import os
import shutil

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from safetensors import safe_open
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "loaders")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SMOLLM = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

TYPE_NAMES = {V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32",
              V.INT32: "i32", V.FLOAT32: "f32", V.BOOL: "bool", V.STRING: "string",
              V.ARRAY: "array", V.UINT64: "u64", V.INT64: "i64", V.FLOAT64: "f64"}
ARRAY_HEAD = 8   # array elements recorded per key
VALUES_HEAD = 32  # dequantized values recorded per tensor


def py(v):
    """numpy scalar -> JSON-friendly python value (floats as the exact double of the value)."""
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    return v


def describe_gguf(path, value_tensors=None):
    """Everything the C++ test checks, as read by gguf.GGUFReader."""
    r = gguf.GGUFReader(path)
    kv = {}
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        t = f.types[0]
        entry = {"type": TYPE_NAMES[t]}
        if t == V.ARRAY:
            entry["elem"] = TYPE_NAMES[f.types[-1]]
            entry["len"] = len(f.data)
            if len(f.types) == 2:  # flat arrays; nested ones are checked by hand in the test
                entry["head"] = [py(x) for x in f.contents(slice(0, ARRAY_HEAD))]
        else:
            entry["value"] = py(f.contents())
        kv[key] = entry
    tensors, values = [], {}
    for t in r.tensors:
        tensors.append({"name": t.name, "type": int(t.tensor_type),
                        "shape": [int(x) for x in reversed(t.shape)],  # outermost first
                        "offset": int(t.data_offset), "nbytes": int(t.n_bytes)})
        if value_tensors is None or t.name in value_tensors:
            flat = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
            values[t.name] = [float(x) for x in flat[:VALUES_HEAD]]
    return {"file": os.path.basename(path), "size": os.path.getsize(path),
            "version": int(r.fields["GGUF.version"].contents()), "alignment": int(r.alignment),
            "data_offset": int(r.data_offset), "kv": kv, "tensors": tensors,
            "tensor_values": values}


def write_json(path, obj, indent=1):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=True)
        f.write("\n")


def make_tiny_gguf(path, alignment=None):
    rng = np.random.default_rng(1234)
    w = gguf.GGUFWriter(path, "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_name("tiny")
    w.add_block_count(2)
    w.add_context_length(128)
    w.add_embedding_length(64)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(16)
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(2.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<s>", "</s>", "a", "b", "c", "ab", "\u00e9t\u00e9", "\u4f60\u597d"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_key_value("test.u8", 200, V.UINT8)
    w.add_key_value("test.i8", -100, V.INT8)
    w.add_key_value("test.u16", 60000, V.UINT16)
    w.add_key_value("test.i16", -30000, V.INT16)
    w.add_key_value("test.u32", 4000000000, V.UINT32)
    w.add_key_value("test.i32", -2000000000, V.INT32)
    w.add_key_value("test.f32", 0.1, V.FLOAT32)
    w.add_key_value("test.bool", True, V.BOOL)
    w.add_key_value("test.u64", 2**63 + 5, V.UINT64)  # does not fit in int64
    w.add_key_value("test.i64", -(2**40), V.INT64)
    w.add_key_value("test.f64", 2.0 / 3.0, V.FLOAT64)
    w.add_key_value("test.string", "h\u00e9llo\nworld", V.STRING)
    w.add_key_value("test.empty_string", "", V.STRING)
    w.add_key_value("test.i32_array", [3, -1, 7, 2**31 - 1], V.ARRAY, V.INT32)
    w.add_key_value("test.f32_array", [0.5, -1.25, 3.0], V.ARRAY, V.FLOAT32)
    w.add_key_value("test.bool_array", [True, False, True], V.ARRAY, V.BOOL)
    w.add_key_value("test.nested", [[1, 2], [3], [4, 5, 6]], V.ARRAY)  # arrays of i32 arrays
    w.add_tensor("token_embd.weight", rng.standard_normal((8, 64)).astype(np.float32))
    w.add_tensor("blk.0.attn_norm.weight", rng.standard_normal(64).astype(np.float16))
    q8 = gguf.quants.quantize(rng.standard_normal((3, 64)).astype(np.float32), Q.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=Q.Q8_0)
    q41 = gguf.quants.quantize(rng.standard_normal((2, 32)).astype(np.float32), Q.Q4_1)
    w.add_tensor("blk.0.ffn_up.weight", q41, raw_dtype=Q.Q4_1)
    w.add_tensor("output.weight", rng.standard_normal((2, 2, 2, 4)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_deepseek2_gguf(path):
    """Metadata only (no tensors): DeepSeek-V3-style keys for ModelConfig::from_gguf."""
    w = gguf.GGUFWriter(path, "deepseek2")
    a = "deepseek2."
    ints = {"block_count": 4, "context_length": 4096, "embedding_length": 256,
            "feed_forward_length": 512, "attention.head_count": 8, "attention.head_count_kv": 8,
            "vocab_size": 1000, "rope.dimension_count": 16, "attention.q_lora_rank": 96,
            "attention.kv_lora_rank": 64, "attention.key_length": 80,
            "attention.value_length": 64, "attention.key_length_mla": 48,
            "attention.value_length_mla": 32, "expert_count": 16, "expert_used_count": 4,
            "expert_shared_count": 1, "expert_feed_forward_length": 128,
            "leading_dense_block_count": 1, "expert_gating_func": 2, "expert_group_count": 4,
            "expert_group_used_count": 2, "rope.scaling.original_context_length": 256}
    for k, v in ints.items():
        w.add_key_value(a + k, v, V.UINT32)
    w.add_key_value(a + "rope.freq_base", 10000.0, V.FLOAT32)
    w.add_key_value(a + "attention.layer_norm_rms_epsilon", 1e-6, V.FLOAT32)
    w.add_key_value(a + "expert_weights_scale", 2.5, V.FLOAT32)
    w.add_key_value(a + "expert_weights_norm", True, V.BOOL)
    w.add_key_value(a + "rope.scaling.type", "yarn", V.STRING)
    w.add_key_value(a + "rope.scaling.factor", 40.0, V.FLOAT32)
    w.add_key_value(a + "rope.scaling.yarn_log_multiplier", 0.1, V.FLOAT32)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def describe_safetensors(paths):
    tensors = {}
    metadata = {}
    for p in paths:
        with safe_open(p, framework="numpy") as f:
            metadata.update(f.metadata() or {})
            for name in f.keys():
                arr = f.get_tensor(name)
                tensors[name] = {"file": os.path.basename(p), "dtype": str(arr.dtype),
                                 "shape": list(arr.shape),
                                 "values": [py(x) for x in arr.reshape(-1)[:VALUES_HEAD]]}
    return {"tensors": tensors, "metadata": metadata}


def make_safetensors():
    rng = np.random.default_rng(99)
    tensors = {
        "model.embed_tokens.weight": rng.standard_normal((6, 8)).astype(np.float32),
        "model.norm.weight": rng.standard_normal(8).astype(np.float16),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((2, 3, 4)).astype(np.float64),
        "ids": np.arange(5, dtype=np.int64) - 2,
        "mask": np.array([[True, False], [False, True]]),
        "bytes": np.arange(7, dtype=np.int8),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    path = os.path.join(OUT, "tiny.safetensors")
    save_file(tensors, path, metadata={"format": "pt", "note": "tessera loader fixture"})
    exp = describe_safetensors([path])
    write_json(os.path.join(OUT, "tiny.safetensors.expected.json"), exp)

    shard_dir = os.path.join(OUT, "sharded")
    os.makedirs(shard_dir, exist_ok=True)
    shards = [
        {"a.weight": rng.standard_normal((4, 4)).astype(np.float32),
         "b.bias": rng.standard_normal(4).astype(np.float32)},
        {"c.weight": rng.standard_normal((2, 8)).astype(np.float16)},
    ]
    names, weight_map = [], {}
    for i, s in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(s, os.path.join(shard_dir, name), metadata={"format": "pt"})
        names.append(os.path.join(shard_dir, name))
        for k in s:
            weight_map[k] = name
    total = sum(a.nbytes for s in shards for a in s.values())
    write_json(os.path.join(shard_dir, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json(os.path.join(OUT, "sharded.expected.json"), describe_safetensors(names))


def main():
    os.makedirs(OUT, exist_ok=True)
    tiny = os.path.join(OUT, "tiny.gguf")
    make_tiny_gguf(tiny)
    write_json(os.path.join(OUT, "tiny.gguf.expected.json"), describe_gguf(tiny))
    a64 = os.path.join(OUT, "align64.gguf")
    make_tiny_gguf(a64, alignment=64)
    write_json(os.path.join(OUT, "align64.gguf.expected.json"), describe_gguf(a64))
    make_deepseek2_gguf(os.path.join(OUT, "deepseek2.gguf"))
    make_safetensors()
    if os.path.exists(SMOLLM):
        keep = {"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_down.weight",
                "blk.29.attn_v.weight", "output_norm.weight"}
        write_json(os.path.join(OUT, "smollm2_q4_1.expected.json"), describe_gguf(SMOLLM, keep),
                   indent=None)
    else:
        print(f"note: {SMOLLM} absent; smollm2_q4_1.expected.json not refreshed")

    for kind, files in (("fuzz_gguf", ["tiny.gguf", "align64.gguf", "deepseek2.gguf"]),
                        ("fuzz_safetensors", ["tiny.safetensors",
                                              "sharded/model-00001-of-00002.safetensors",
                                              "sharded/model-00002-of-00002.safetensors"])):
        d = os.path.join(CORPUS, kind)
        os.makedirs(d, exist_ok=True)
        for f in files:
            shutil.copy(os.path.join(OUT, f), os.path.join(d, "seed_" + os.path.basename(f)))
    for dirpath, _, names in os.walk(OUT):  # safetensors writes 0600 files
        for n in names:
            os.chmod(os.path.join(dirpath, n), 0o644)
    for n in os.listdir(os.path.join(CORPUS, "fuzz_safetensors")):
        os.chmod(os.path.join(CORPUS, "fuzz_safetensors", n), 0o644)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
