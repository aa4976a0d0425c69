#!/usr/bin/env python3
"""Sampling oracle fixtures: seeded random logits rows pushed through HF transformers' own
logits processors (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
TopPLogitsWarper, MinPLogitsWarper, in the order generate() composes them), with logit_bias
and masking added first and the OpenAI frequency / presence rule (no HF processor exists)
computed with numpy. Raw logprobs are torch.log_softmax of the unprocessed row.
Writes tests/fixtures/sampling/sampling_cases.json, read by tests/unit/sampling_oracle_test.cc.

Run: /work/oracle-venv/bin/python scripts/make_sampling_fixtures.py
"""
import json
import pathlib

import numpy as np
import torch
import transformers
from transformers import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                          TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "sampling"
VOCAB = 1000
TOP_LOGPROBS = 20
# A fixture is rejected (and the next seed tried) when a filter boundary lies closer than this
# to its threshold: float rounding there is not what the test is about.
MARGIN = 1e-4

# name -> params; prompt / output histories are drawn per case from the row's likely tokens.
CASES = {
    "plain": dict(temperature=1.0),
    "temp_top_k": dict(temperature=0.7, top_k=50),
    "temp_top_p": dict(temperature=1.3, top_p=0.9),
    "small_nucleus": dict(temperature=0.5, top_p=0.3),
    "min_p_only": dict(temperature=1.0, min_p=0.1),
    "k_p_min_p": dict(temperature=0.8, top_k=100, top_p=0.8, min_p=0.05),
    "repetition": dict(temperature=0.9, top_p=0.95, repetition_penalty=1.3, history=True),
    "repetition_below_one": dict(temperature=1.0, top_k=64, repetition_penalty=0.8,
                                 history=True),
    "frequency_presence": dict(temperature=1.0, top_k=200, frequency_penalty=0.5,
                               presence_penalty=0.3, history=True),
    "negative_penalties": dict(temperature=1.2, top_p=0.85, frequency_penalty=-0.7,
                               presence_penalty=-1.5, history=True),
    "bias_mask_p_min_p": dict(temperature=1.1, top_p=0.7, min_p=0.02, bias=True, mask=True),
    "everything": dict(temperature=0.6, top_k=30, top_p=0.9, min_p=0.01,
                       repetition_penalty=1.2, frequency_penalty=0.4, presence_penalty=0.6,
                       bias=True, mask=True, history=True),
    "greedy_penalised": dict(temperature=0.0, repetition_penalty=1.5, frequency_penalty=1.0,
                             presence_penalty=1.0, bias=True, mask=True, history=True),
}


def histories(rng, raw):
    likely = np.argsort(-raw, kind="stable")[:40]
    prompt = [int(t) for t in rng.choice(likely, 25)] + [int(t) for t in rng.integers(0, VOCAB, 15)]
    output = [int(t) for t in rng.choice(likely[:15], 12)] + [int(t) for t in rng.integers(0, VOCAB, 4)]
    return prompt, output


def process(raw, p, prompt, output, bias, masked):
    scores = torch.tensor(raw, dtype=torch.float32)[None, :].clone()
    for tok, b in bias:
        scores[0, tok] += np.float32(b)
    for tok in masked:
        scores[0, tok] = -float("inf")
    ids = torch.tensor([prompt + output], dtype=torch.long)
    if p.get("repetition_penalty", 1.0) != 1.0:
        scores = RepetitionPenaltyLogitsProcessor(penalty=p["repetition_penalty"])(ids, scores)
    freq, pres = p.get("frequency_penalty", 0.0), p.get("presence_penalty", 0.0)
    if freq != 0.0 or pres != 0.0:
        counts = np.bincount(np.array(output, dtype=np.int64), minlength=VOCAB).astype(np.float32)
        arr = scores[0].numpy().copy()
        arr -= counts * np.float32(freq) + (counts > 0).astype(np.float32) * np.float32(pres)
        scores = torch.from_numpy(arr)[None, :]
    penalised = scores.clone()
    if p["temperature"] == 0.0:
        return penalised, None
    scores = TemperatureLogitsWarper(p["temperature"])(ids, scores)
    tempered = scores.clone()
    if p.get("top_k", 0) > 0:
        scores = TopKLogitsWarper(top_k=p["top_k"])(ids, scores)
    after_k = scores.clone()
    if p.get("top_p", 1.0) < 1.0:
        scores = TopPLogitsWarper(top_p=p["top_p"])(ids, scores)
    if p.get("min_p", 0.0) > 0.0:
        scores = MinPLogitsWarper(min_p=p["min_p"])(ids, scores)
    return penalised, (tempered, after_k, scores)


def boundaries_clear(p, stages):
    """True when no top-p / min-p decision sits within MARGIN of its threshold."""
    tempered, after_k, _ = stages
    if p.get("top_p", 1.0) < 1.0:
        probs = torch.softmax(after_k[0].double(), -1).numpy()
        order = np.argsort(-probs, kind="stable")
        above = np.concatenate([[0.0], np.cumsum(probs[order])[:-1]])
        if np.min(np.abs(above - p["top_p"])) < MARGIN:
            return False
    if p.get("min_p", 0.0) > 0.0:
        t = tempered[0].double().numpy()
        finite = np.isfinite(t)
        ratio = np.exp(t[finite] - t[finite].max())
        if np.min(np.abs(ratio - p["min_p"]) / p["min_p"]) < MARGIN:
            return False
    return True


def make_case(name, p, seed):
    rng = np.random.default_rng(seed)
    raw = (rng.standard_normal(VOCAB) * 2.5).astype(np.float32)
    prompt, output = histories(rng, raw) if p.get("history") else ([], [])
    bias, masked = [], []
    if p.get("bias"):
        order = np.argsort(-raw, kind="stable")
        bias = [(int(order[3]), 2.5), (int(order[0]), -1.75), (int(rng.integers(0, VOCAB)), 30.0),
                (int(order[10]), 1.0)]
        if p["temperature"] != 0.0:
            bias[2] = (bias[2][0], -100.0)
    if p.get("mask"):
        order = np.argsort(-raw, kind="stable")
        masked = [int(order[1]), int(order[5]), int(rng.integers(0, VOCAB))]
    penalised, stages = process(raw, p, prompt, output, bias, masked)
    raw_t = torch.tensor(raw, dtype=torch.float32)
    logprobs = torch.log_softmax(raw_t, -1)
    top = torch.topk(logprobs, TOP_LOGPROBS)
    case = {
        "name": name,
        "seed": seed,
        "params": {k: v for k, v in p.items() if k not in ("history", "bias", "mask")},
        "logit_bias": [[t, b] for t, b in bias],
        "masked": masked,
        "prompt": prompt,
        "output": output,
        "logits": [float(x) for x in raw],
        "logsumexp": float(torch.logsumexp(raw_t.double(), -1)),
        "top_logprobs": [[int(i), float(v)] for v, i in zip(top.values, top.indices)],
    }
    if stages is None:
        pen = penalised[0].numpy()
        case["greedy_token"] = int(np.argmax(pen))
        return case, True
    if not boundaries_clear(p, stages):
        return None, False
    final = stages[2][0]
    kept = torch.isfinite(final).nonzero().flatten()
    probs = torch.softmax(final.double(), -1)
    case["kept"] = [int(i) for i in kept]
    case["kept_probs"] = [float(probs[i]) for i in kept]
    return case, True


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for index, (name, p) in enumerate(CASES.items()):
        seed = 1000 * (index + 1)
        while True:
            case, ok = make_case(name, p, seed)
            if ok:
                break
            seed += 1
        cases.append(case)
        print(f"{name}: seed {seed}, kept {len(case.get('kept', []))}")
    doc = {"transformers": transformers.__version__, "torch": torch.__version__,
           "vocab": VOCAB, "cases": cases}
    (OUT / "sampling_cases.json").write_text(json.dumps(doc) + "\n")


if __name__ == "__main__":
    main()
