#!/usr/bin/env python3
"""Golden fixtures from llama.cpp (llama-cpp-python) on the SmolLM2 GGUF.

Tokenizes tests/fixtures/smollm2/text.txt as llama.cpp's perplexity tool does (special tokens
added by the model's own rule, special-token text not parsed), runs it teacher-forced with
logits for every position, and writes to tests/fixtures/smollm2/:
  golden.json          tokens, per-position top-1 ids, perplexity at PPL_CTX, provenance
  topk_ids.i32         int32 [num_tokens, TOPK]  ids of the TOPK most likely next tokens
  topk_logprobs.f32    f32   [num_tokens, TOPK]  their log-probabilities (full-vocab softmax)
The perplexity is computed here from llama.cpp's logits by llama.cpp's method: windows of
PPL_CTX tokens from an empty cache, BOS replacing each window's first token only when the
model adds BOS, scoring logits at positions ctx/2 .. ctx-2 against the next token.
It also records how far llama.cpp moves from itself with an f32 KV cache (top-1 agreement),
the noise floor that the C++ test's thresholds are set against.
Run: /work/oracle-venv/bin/python scripts/make_llamacpp_fixtures.py [model.gguf]
"""
import json
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "smollm2")
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TOPK = 32
PPL_CTX = 256
DECISIVE_MARGIN = 0.1  # nats between top-1 and top-2 (see tests/models/smollm2_test.cc)


def log_softmax(rows):
    rows = rows.astype(np.float64)
    m = rows.max(axis=-1, keepdims=True)
    return rows - m - np.log(np.exp(rows - m).sum(axis=-1, keepdims=True))


def all_logits(llm, tokens):
    """Logits [len(tokens), vocab] for one sequence from an empty cache."""
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def perplexity(llm, tokens, ctx, bos):
    first = ctx // 2
    nll, count = 0.0, 0
    for w in range(len(tokens) // ctx):
        window = list(tokens[w * ctx:(w + 1) * ctx])
        if bos is not None:
            window[0] = bos
        lp = log_softmax(all_logits(llm, window))
        for j in range(first, ctx - 1):
            nll -= lp[j, window[j + 1]]
            count += 1
    return float(np.exp(nll / count)), count, len(tokens) // ctx


def main():
    model_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    with open(os.path.join(OUT, "text.txt"), encoding="utf-8") as f:
        text = f.read()
    llm = Llama(model_path=model_path, n_ctx=2048, n_batch=512, logits_all=True, n_threads=2,
                verbose=False, seed=0)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    print(f"{len(tokens)} tokens, add_bos={add_bos}")
    assert len(tokens) >= 2 * PPL_CTX

    lp = log_softmax(all_logits(llm, tokens))
    top1 = lp.argmax(axis=-1)
    topk_ids = np.argsort(-lp, axis=-1, kind="stable")[:, :TOPK].astype("<i4")
    topk_lp = np.take_along_axis(lp, topk_ids, axis=-1).astype("<f4")
    ppl, scored, windows = perplexity(llm, tokens, PPL_CTX, llm.token_bos() if add_bos else None)
    print(f"perplexity(ctx={PPL_CTX}) = {ppl:.4f} over {scored} tokens; "
          f"top-{TOPK} mass min {np.exp(topk_lp.astype(np.float64)).sum(-1).min():.3f}")

    # llama.cpp against itself with an f32 KV cache: how much top-1 moves on near-ties.
    alt = Llama(model_path=model_path, n_ctx=2048, n_batch=512, logits_all=True, n_threads=2,
                verbose=False, seed=0, type_k=0, type_v=0)
    alt_top1 = all_logits(alt, tokens).argmax(axis=-1)
    decisive = (topk_lp[:, 0] - topk_lp[:, 1]) >= DECISIVE_MARGIN
    self_check = {"variant": "f32 KV cache (default f16)",
                  "top1_agreement": float((alt_top1 == top1).mean()),
                  "decisive_margin": DECISIVE_MARGIN,
                  "decisive_fraction": float(decisive.mean()),
                  "decisive_top1_agreement": float((alt_top1 == top1)[decisive].mean())}
    print(f"llama.cpp self-check: {self_check}")

    topk_ids.tofile(os.path.join(OUT, "topk_ids.i32"))
    topk_lp.tofile(os.path.join(OUT, "topk_logprobs.f32"))
    golden = {
        "model": os.path.basename(model_path),
        "source": f"llama-cpp-python {llama_cpp.__version__}, logits_all, n_batch 512",
        "add_bos": add_bos,
        "tokens": [int(t) for t in tokens],
        "top1": [int(t) for t in top1],
        "topk": TOPK,
        "topk_ids_file": "topk_ids.i32",
        "topk_logprobs_file": "topk_logprobs.f32",
        "llama_cpp_self_check": self_check,
        "perplexity": {"ctx": PPL_CTX, "value": ppl, "tokens_scored": scored,
                       "windows": windows},
    }
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f)


if __name__ == "__main__":
    main()
