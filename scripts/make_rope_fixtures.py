#!/usr/bin/env python3
"""Rope oracle fixtures: inv_freq and attention factor from HF transformers' own rope init
functions (transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS), run through torch, for
default / linear / llama3 / yarn. Writes tests/fixtures/rope/rope_fixtures.json, which
tests/ops/rope_fixture_test.cc compares our rotation against.

Run: /work/oracle-venv/bin/python scripts/make_rope_fixtures.py
"""
import json
import pathlib

import transformers
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "rope"

# (name, head_dim, partial_rotary_factor, rope_parameters)
CASES = [
    ("default_smollm", 64, 1.0, {"rope_type": "default", "rope_theta": 100000.0}),
    ("default_partial", 128, 0.5, {"rope_type": "default", "rope_theta": 10000.0}),
    ("linear", 64, 1.0, {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}),
    ("llama3", 128, 1.0, {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192}),
    ("llama3_32", 64, 1.0, {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 8192}),
    ("yarn", 64, 1.0, {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                       "original_max_position_embeddings": 4096}),
    ("yarn_deepseek", 64, 1.0, {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0,
                                "original_max_position_embeddings": 4096, "beta_fast": 32,
                                "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.707}),
]


def main():
    cases = []
    for name, head_dim, partial, params in CASES:
        num_heads = 4
        max_pos = int(params.get("original_max_position_embeddings", 8192) * params.get("factor", 1))
        cfg = LlamaConfig(hidden_size=head_dim * num_heads, num_attention_heads=num_heads,
                          head_dim=head_dim, max_position_embeddings=max_pos,
                          rope_parameters=dict(params))
        if partial != 1.0:
            # NOTE: HF's default init ignores partial_rotary_factor; a rotary dim of
            # head_dim * partial is its default inv_freq for head_dim = that rotary dim.
            rot = int(head_dim * partial)
            cfg = LlamaConfig(hidden_size=rot * num_heads, num_attention_heads=num_heads,
                              head_dim=rot, max_position_embeddings=max_pos,
                              rope_parameters=dict(params))
        rope_type = params["rope_type"]
        if rope_type == "default":
            from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
            inv_freq, attention_factor = LlamaRotaryEmbedding.compute_default_rope_parameters(cfg)
        else:
            inv_freq, attention_factor = ROPE_INIT_FUNCTIONS[rope_type](cfg, "cpu")
        cases.append({
            "name": name,
            "rope_type": rope_type,
            "rot_dim": int(head_dim * partial),
            "head_dim": head_dim,
            "params": params,
            "attention_factor": float(attention_factor),
            "inv_freq": [float(v) for v in inv_freq.double().tolist()],
        })
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"generator": f"transformers {transformers.__version__} ROPE_INIT_FUNCTIONS (torch)",
           "cases": cases}
    (OUT / "rope_fixtures.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT / 'rope_fixtures.json'}")


if __name__ == "__main__":
    main()
