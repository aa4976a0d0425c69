#!/usr/bin/env python3
"""MoE routing oracle: runs transformers' own router modules (DeepseekV3TopkRouter,
DeepseekV2TopkRouter greedy / group_limited_greedy, MixtralTopKRouter) on small seeded inputs
and writes tests/fixtures/moe/moe_route_fixtures.json: per case the router logits the module
computed, the correction bias, and the module's expert ids and weights.

Run: /work/oracle-venv/bin/python scripts/make_moe_fixtures.py
tests/ops/moe_test.cc feeds the logits to Backend::moe_route and compares ids (as sets: HF's
topk uses sorted=False) and weights (per id) to these.
"""
import json
import os

import torch
import transformers
from transformers.models.deepseek_v2 import modeling_deepseek_v2 as dsv2
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as dsv3
from transformers.models.mixtral import modeling_mixtral as mixtral

HIDDEN = 32
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "moe",
                   "moe_route_fixtures.json")


def f32_list(t):
    return [float(v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]


def run_router(router, tokens, seed, bias_scale, bias_offset=0.0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, HIDDEN, generator=g)
    with torch.no_grad():
        router.weight.copy_(torch.randn(router.weight.shape, generator=g) * 0.5)
        bias = None
        if hasattr(router, "e_score_correction_bias"):
            bias = (torch.randn(router.e_score_correction_bias.shape, generator=g) * bias_scale
                    + bias_offset)
            router.e_score_correction_bias.copy_(bias)
        out = router(hidden)
    logits, weights, ids = out
    return logits, bias, ids, weights


def v3_case(name, experts, top_k, n_group, topk_group, norm, scaling, tokens, seed, bias_scale,
            bias_offset=0.0):
    cfg = transformers.DeepseekV3Config(
        hidden_size=HIDDEN, n_routed_experts=experts, num_experts_per_tok=top_k,
        n_group=n_group, topk_group=topk_group, norm_topk_prob=norm,
        routed_scaling_factor=scaling)
    router = dsv3.DeepseekV3TopkRouter(cfg)
    assert router.num_experts == experts
    logits, bias, ids, weights = run_router(router, tokens, seed, bias_scale, bias_offset)
    return dict(name=name, module="DeepseekV3TopkRouter", scoring="sigmoid", experts=experts,
                top_k=top_k, n_group=n_group, topk_group=topk_group, norm_topk_prob=norm,
                routed_scaling_factor=scaling, tokens=tokens, logits=f32_list(logits),
                bias=f32_list(bias), ids=ids.reshape(-1).tolist(), weights=f32_list(weights))


def v2_case(name, experts, top_k, method, n_group, topk_group, scaling, tokens, seed):
    cfg = transformers.DeepseekV2Config(
        hidden_size=HIDDEN, n_routed_experts=experts, num_experts_per_tok=top_k,
        topk_method=method, n_group=n_group, topk_group=topk_group,
        routed_scaling_factor=scaling)
    router = dsv2.DeepseekV2TopkRouter(cfg)
    assert router.num_experts == experts
    logits, _, ids, weights = run_router(router, tokens, seed, 0.0)
    groups = n_group if method == "group_limited_greedy" else 1
    kept = topk_group if method == "group_limited_greedy" else 1
    return dict(name=name, module="DeepseekV2TopkRouter/" + method, scoring="softmax",
                experts=experts, top_k=top_k, n_group=groups, topk_group=kept,
                norm_topk_prob=False, routed_scaling_factor=scaling, tokens=tokens,
                logits=f32_list(logits), bias=[], ids=ids.reshape(-1).tolist(),
                weights=f32_list(weights))


def mixtral_case(name, experts, top_k, tokens, seed):
    cfg = transformers.MixtralConfig(hidden_size=HIDDEN, num_local_experts=experts,
                                     num_experts_per_tok=top_k)
    router = mixtral.MixtralTopKRouter(cfg)
    logits, _, ids, weights = run_router(router, tokens, seed, 0.0)
    return dict(name=name, module="MixtralTopKRouter", scoring="softmax", experts=experts,
                top_k=top_k, n_group=1, topk_group=1, norm_topk_prob=True,
                routed_scaling_factor=1.0, tokens=tokens, logits=f32_list(logits), bias=[],
                ids=ids.reshape(-1).tolist(), weights=f32_list(weights))


def main():
    cases = [
        v3_case("v3_e16_g4_kg2_top2", 16, 2, 4, 2, True, 2.5, 7, 1, 0.1),
        v3_case("v3_e32_g8_kg4_top4", 32, 4, 8, 4, True, 2.5, 9, 2, 0.1),
        v3_case("v3_e64_g8_kg4_top8", 64, 8, 8, 4, True, 2.5, 9, 3, 0.1),
        # Large negative/positive biases: selection differs from the unbiased order.
        v3_case("v3_e64_g8_kg4_top8_bigbias", 64, 8, 8, 4, True, 1.0, 9, 4, 1.0),
        # Mostly negative biased scores: masking dropped groups with 0.0 (older transformers)
        # instead of -inf would pick dropped experts here; the fixture pins the -inf rule.
        v3_case("v3_e16_g4_kg2_top8_negbias", 16, 8, 4, 2, True, 1.0, 9, 9, 0.3, -0.9),
        v3_case("v3_e32_g4_kg2_top4_nonorm", 32, 4, 4, 2, False, 1.0, 1, 5, 0.3),
        v2_case("v2_greedy_e64_top6", 64, 6, "greedy", 1, 1, 1.0, 9, 6),
        v2_case("v2_group_limited_e32_g8_kg3_top6", 32, 6, "group_limited_greedy", 8, 3, 16.0,
                9, 7),
        mixtral_case("mixtral_e8_top2", 8, 2, 33, 8),
    ]
    doc = dict(source="transformers %s, torch %s" % (transformers.__version__,
                                                      torch.__version__),
               script="scripts/make_moe_fixtures.py", cases=cases)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.normpath(OUT), len(cases), "cases")


if __name__ == "__main__":
    main()
