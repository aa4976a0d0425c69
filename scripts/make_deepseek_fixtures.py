#!/usr/bin/env python3
"""Golden fixtures for the MoE family: tiny random DeepSeek-V3, DeepSeek-V2 (V2-Lite shaped)
and Mixtral models made with HF transformers.

Writes tests/fixtures/{deepseek_v3,deepseek_v2,mixtral}_tiny/ with model.safetensors (HF hub
tensor names verbatim: routed experts as separate per-expert tensors, not transformers 5's
fused in-memory layout), config.json, golden.json and logits.f32: teacher-forced f32 logits
over 64 random token ids and a 32-token greedy continuation of the first 8. No tokenizer: the
tests feed token ids. The written directory is re-loaded with transformers' from_pretrained
and must reproduce the logits, which proves the tensor names and layouts are the hub's.
The V3 file also carries a few tensors of an MTP layer (index num_hidden_layers), which the
loader must skip. deepseek_v3_fp8_tiny/ is the V3 model with FP8 e4m3 projections and
weight_scale_inv [ceil(out/128), ceil(in/128)] in a second shard; its golden logits are the
transformers model run on the dequantised weights.
Run with the oracle venv:  /work/oracle-venv/bin/python scripts/make_deepseek_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, DeepseekV2Config, DeepseekV3Config,
                          MixtralConfig)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")
VOCAB = 256
NUM_TOKENS = 64
PROMPT_LEN = 8
NUM_GREEDY = 32

COMMON = dict(vocab_size=VOCAB, hidden_size=64, max_position_embeddings=256, rms_norm_eps=1e-6,
              bos_token_id=1, eos_token_id=2, initializer_range=0.1, tie_word_embeddings=False,
              attention_bias=False)

# DeepSeek-V3: q_lora, sigmoid + bias group-limited routing, YaRN with mscale != mscale_all_dim
# (so both the cos/sin factor and the softmax-scale correction are exercised), a dense layer 0.
V3 = dict(COMMON, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
          intermediate_size=96, moe_intermediate_size=32, n_routed_experts=8, n_shared_experts=1,
          num_experts_per_tok=3, n_group=4, topk_group=2, topk_method="noaux_tc",
          scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5,
          first_k_dense_replace=1, q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16,
          qk_rope_head_dim=8, v_head_dim=16, rope_theta=10000.0,
          rope_scaling={"type": "yarn", "rope_type": "yarn", "factor": 4.0,
                        "original_max_position_embeddings": 64, "beta_fast": 32.0,
                        "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 0.8})
# DeepSeek-V2-Lite shape: no q_lora, softmax greedy routing, 2 shared experts, YaRN.
V2 = dict(COMMON, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
          intermediate_size=96, moe_intermediate_size=32, n_routed_experts=8, n_shared_experts=2,
          num_experts_per_tok=3, n_group=1, topk_group=1, topk_method="greedy",
          scoring_func="softmax", norm_topk_prob=False, routed_scaling_factor=1.0,
          first_k_dense_replace=1, q_lora_rank=None, kv_lora_rank=32, qk_nope_head_dim=16,
          qk_rope_head_dim=8, v_head_dim=16, rope_theta=10000.0,
          rope_scaling={"type": "yarn", "rope_type": "yarn", "factor": 4.0,
                        "original_max_position_embeddings": 64, "beta_fast": 32.0,
                        "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 0.707})
MIXTRAL = dict(COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=48, num_local_experts=4, num_experts_per_tok=2,
               rope_theta=1000000.0, sliding_window=None, rope_scaling=None)

VARIANTS = [("deepseek_v3_tiny", DeepseekV3Config, V3), ("deepseek_v2_tiny", DeepseekV2Config, V2),
            ("mixtral_tiny", MixtralConfig, MIXTRAL)]


def hub_state_dict(model, model_type):
    """The model's tensors under the HF hub checkpoint names: transformers 5 fuses routed
    experts into [E, 2I, H] gate_up_proj / [E, H, I] down_proj in memory; published
    checkpoints store experts.E.{gate,up,down}_proj (DeepSeek) / experts.E.w1,w3,w2 (Mixtral)."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().float().contiguous()
        if k.endswith("mlp.experts.gate_up_proj"):
            pre = k[: -len("experts.gate_up_proj")]
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                if model_type == "mixtral":
                    pre_m = pre.replace(".mlp.", ".block_sparse_moe.")
                    out[f"{pre_m}experts.{e}.w1.weight"] = v[e, :inter].clone()
                    out[f"{pre_m}experts.{e}.w3.weight"] = v[e, inter:].clone()
                else:
                    out[f"{pre}experts.{e}.gate_proj.weight"] = v[e, :inter].clone()
                    out[f"{pre}experts.{e}.up_proj.weight"] = v[e, inter:].clone()
        elif k.endswith("mlp.experts.down_proj"):
            pre = k[: -len("experts.down_proj")]
            for e in range(v.shape[0]):
                if model_type == "mixtral":
                    pre_m = pre.replace(".mlp.", ".block_sparse_moe.")
                    out[f"{pre_m}experts.{e}.w2.weight"] = v[e].clone()
                else:
                    out[f"{pre}experts.{e}.down_proj.weight"] = v[e].clone()
        elif model_type == "mixtral" and ".mlp.gate." in k:
            out[k.replace(".mlp.", ".block_sparse_moe.")] = v
        else:
            out[k] = v
    return out


def classic_config(cfg, overrides):
    """config.json as published checkpoints carry it (rope_theta + rope_scaling at top level);
    transformers 5 writes rope_parameters instead, so both are kept."""
    d = json.loads(cfg.to_json_string())
    for key in ("rope_theta", "rope_scaling", "q_lora_rank", "topk_method", "scoring_func",
                "n_group", "topk_group", "norm_topk_prob"):
        if key in overrides:
            d[key] = overrides[key]
    d["torch_dtype"] = "float32"
    return d


def greedy_margin(model, prompt):
    ids = list(prompt)
    margin = float("inf")
    with torch.no_grad():
        for _ in range(NUM_GREEDY):
            logits = model(torch.tensor([ids])).logits[0, -1].double()
            top = torch.topk(logits, 2).values
            margin = min(margin, float(top[0] - top[1]))
            ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):], margin


def build(config_cls, overrides, seed):
    cfg = config_cls(**overrides)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval().float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.1 * torch.randn_like(b))
    return cfg, model


def make_variant(name, config_cls, overrides):
    for seed in range(1234, 1244):
        cfg, model = build(config_cls, overrides, seed)
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(3, VOCAB, (NUM_TOKENS,), generator=g).tolist()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
        greedy, margin = greedy_margin(model, ids[:PROMPT_LEN])
        print(f"{name} seed {seed}: max|logit|={np.abs(logits).max():.3f} margin={margin:.4g}")
        if margin >= 1e-3:
            break
    else:
        sys.exit(f"{name}: no seed gives a stable greedy golden")

    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    sd = hub_state_dict(model, cfg.model_type)
    if cfg.model_type == "deepseek_v3":
        # An MTP layer's tensors (index num_hidden_layers), as V3 checkpoints carry: skipped.
        mtp = f"model.layers.{cfg.num_hidden_layers}."
        sd[mtp + "input_layernorm.weight"] = torch.ones(cfg.hidden_size)
        sd[mtp + "enorm.weight"] = torch.ones(cfg.hidden_size)
        sd[mtp + "eh_proj.weight"] = torch.zeros(cfg.hidden_size, 2 * cfg.hidden_size)
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(classic_config(cfg, overrides), f, indent=2, sort_keys=True)

    # The hub-named file must load back into transformers with the same logits.
    back = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager",
                                                dtype=torch.float32).eval()
    with torch.no_grad():
        again = back(torch.tensor([ids])).logits[0].float().numpy()
    diff = float(np.abs(again - logits).max())
    print(f"{name}: reload max diff {diff:.3g}")
    if diff > 1e-5:
        sys.exit(f"{name}: the hub-named checkpoint does not reload identically ({diff})")

    logits.astype("<f4").tofile(os.path.join(out, "logits.f32"))
    golden = {"tokens": ids, "vocab_size": VOCAB, "logits_file": "logits.f32",
              "prompt": ids[:PROMPT_LEN], "greedy": greedy, "greedy_min_margin": margin,
              "seed": seed,
              "source": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                        "float32, eager attention"}
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    return model


def quantize_fp8(w):
    """DeepSeek-V3's FP8 layout: e4m3 weight and f32 weight_scale_inv per 128x128 block
    (dequant = f32(w) * scale_inv[n // 128, k // 128]); the last blocks may be partial."""
    n, k = w.shape
    sn, sk = (n + 127) // 128, (k + 127) // 128
    q = torch.empty(n, k, dtype=torch.float8_e4m3fn)
    scale = torch.empty(sn, sk, dtype=torch.float32)
    for i in range(sn):
        for j in range(sk):
            blk = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            s = float(blk.abs().max()) / 448.0 or 1.0
            scale[i, j] = s
            q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = (blk / s).to(torch.float8_e4m3fn)
    return q, scale


def dequantize_fp8(q, scale):
    full = scale.repeat_interleave(128, 0).repeat_interleave(128, 1)[: q.shape[0], : q.shape[1]]
    return q.to(torch.float32) * full


def make_fp8_copy(model, src_name, name):
    """The V3 model with every projection (attention, dense MLP, experts, shared experts) in
    FP8 e4m3 + weight_scale_inv, the scales in a second shard; golden logits come from the
    same transformers model with those weights dequantised back to f32."""
    src = os.path.join(OUT, src_name)
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    sd = hub_state_dict(model, "deepseek_v3")
    weights, scales = {}, {}
    for k, v in sd.items():
        quantize = (k.endswith("_proj.weight") and ".layers." in k) or k.endswith("eh_proj.weight")
        if quantize and v.ndim == 2:
            q, s = quantize_fp8(v)
            weights[k] = q
            scales[k + "_scale_inv"] = s
        else:
            weights[k] = v
    shards = {"model-00001-of-00002.safetensors": weights,
              "model-00002-of-00002.safetensors": scales}
    index = {"metadata": {}, "weight_map": {}}
    for fname, tensors in shards.items():
        save_file(tensors, os.path.join(out, fname), metadata={"format": "pt"})
        index["weight_map"].update({k: fname for k in tensors})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3",
                                     "quant_method": "fp8", "weight_block_size": [128, 128]}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)

    # Dequantised reference: load the dequantised weights into a copy of the model.
    deq = {k: (dequantize_fp8(v, scales[k + "_scale_inv"]) if k + "_scale_inv" in scales else v)
           for k, v in weights.items()}
    ref_dir = os.path.join(out, "_tmp_dequant")
    os.makedirs(ref_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in deq.items()},
              os.path.join(ref_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(ref_dir, "config.json"), "w") as f:
        json.dump({k: v for k, v in config.items() if k != "quantization_config"}, f)
    ref = AutoModelForCausalLM.from_pretrained(ref_dir, attn_implementation="eager",
                                               dtype=torch.float32).eval()
    for fname in os.listdir(ref_dir):
        os.remove(os.path.join(ref_dir, fname))
    os.rmdir(ref_dir)
    with open(os.path.join(src, "golden.json")) as f:
        golden = json.load(f)
    ids = golden["tokens"]
    with torch.no_grad():
        logits = ref(torch.tensor([ids])).logits[0].float().numpy()
    greedy, margin = greedy_margin(ref, ids[:PROMPT_LEN])
    print(f"{name}: max|logit|={np.abs(logits).max():.3f} greedy margin={margin:.4g}")
    logits.astype("<f4").tofile(os.path.join(out, "logits.f32"))
    golden.update({"greedy": greedy, "greedy_min_margin": margin,
                   "source": golden["source"] + "; FP8 e4m3 block-128 weights, logits of the "
                             "dequantised model"})
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)


def main():
    models = {}
    for name, cls, overrides in VARIANTS:
        models[name] = make_variant(name, cls, overrides)
    make_fp8_copy(models["deepseek_v3_tiny"], "deepseek_v3_tiny", "deepseek_v3_fp8_tiny")


if __name__ == "__main__":
    main()
