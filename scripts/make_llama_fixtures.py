#!/usr/bin/env python3
"""Golden fixtures for the Llama family: tiny random models made with HF transformers.

Writes tests/fixtures/llama_tiny/<variant>/ with model.safetensors, config.json,
tokenizer.json (a tiny byte-level BPE trained here) and golden.json + logits.f32:
teacher-forced f32 logits over 64 tokens and a 32-token greedy continuation. The "tied"
variant is also written as model.gguf (f32, llama arch) with Q/K rows permuted the way
llama.cpp's converter does, so the GGUF path (interleaved rope) is checked exactly too.
Run with the oracle venv:  /work/oracle-venv/bin/python scripts/make_llama_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
import gguf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "llama_tiny")
TEXT = os.path.join(ROOT, "tests", "fixtures", "smollm2", "text.txt")
VOCAB = 288
NUM_TOKENS = 64
PROMPT_LEN = 8
NUM_GREEDY = 32
PPL_CTX = 64  # perplexity of the whole text.txt, checked through `tessera perplexity`

# Variants: (name, config overrides). "base" has llama3 rope scaling and untied lm_head;
# "tied" ties embeddings and adds q/k/v/o biases (attention_bias) with plain rope.
VARIANTS = [
    ("base", dict(hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, tie_word_embeddings=False, attention_bias=False,
                  rope_theta=10000.0,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 64})),
    ("tied", dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                  num_key_value_heads=2, tie_word_embeddings=True, attention_bias=True,
                  rope_theta=500.0, rope_scaling=None)),
]


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    tok.train_from_iterator([text], trainer)
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()
    return tok, text


def classic_config(cfg, overrides):
    """config.json in the long-standing HF layout (rope_theta + rope_scaling at top level),
    which is what published checkpoints carry; transformers 5 writes rope_parameters instead,
    so both are kept."""
    d = json.loads(cfg.to_json_string())
    d["rope_theta"] = overrides["rope_theta"]
    d["rope_scaling"] = overrides["rope_scaling"]
    d["torch_dtype"] = "float32"
    return d


def permute_rows(w, n_head):
    """llama.cpp's GGUF layout for llama Q/K: within each head, row i of the first half and
    row i of the second half (HF's rotation pair) become adjacent rows 2i, 2i+1."""
    head_dim = w.shape[0] // n_head
    return (w.reshape(n_head, 2, head_dim // 2, *w.shape[1:]).swapaxes(1, 2)
            .reshape(w.shape))


def write_gguf(model, cfg, path):
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    names = {"input_layernorm.weight": "attn_norm.weight",
             "post_attention_layernorm.weight": "ffn_norm.weight",
             "self_attn.o_proj.weight": "attn_output.weight",
             "self_attn.o_proj.bias": "attn_output.bias",
             "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
             "mlp.down_proj.weight": "ffn_down.weight"}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        pre = f"model.layers.{i}."
        for hf, gg in names.items():
            if pre + hf in sd:
                w.add_tensor(f"blk.{i}.{gg}", sd[pre + hf])
        for proj, heads in (("q", cfg.num_attention_heads), ("k", cfg.num_key_value_heads)):
            for kind in ("weight", "bias"):
                key = f"{pre}self_attn.{proj}_proj.{kind}"
                if key in sd:
                    w.add_tensor(f"blk.{i}.attn_{proj}.{kind}", permute_rows(sd[key], heads))
        for kind in ("weight", "bias"):
            key = f"{pre}self_attn.v_proj.{kind}"
            if key in sd:
                w.add_tensor(f"blk.{i}.attn_v.{kind}", sd[key])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not cfg.tie_word_embeddings:
        w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def greedy_margin(model, prompt):
    """Greedy continuation and the smallest top1-top2 logit gap along it."""
    ids = list(prompt)
    margin = float("inf")
    with torch.no_grad():
        for _ in range(NUM_GREEDY):
            logits = model(torch.tensor([ids])).logits[0, -1].double()
            top = torch.topk(logits, 2).values
            margin = min(margin, float(top[0] - top[1]))
            ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):], margin


def perplexity(model, ids, ctx):
    """llama.cpp's method (no BOS: the tokenizer does not add one): windows of ctx tokens
    from an empty cache, scoring logits at ctx/2 .. ctx-2 against the next token."""
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(len(ids) // ctx):
            window = ids[w * ctx:(w + 1) * ctx]
            lp = torch.log_softmax(model(torch.tensor([window])).logits[0].double(), dim=-1)
            for j in range(ctx // 2, ctx - 1):
                nll -= float(lp[j, window[j + 1]])
                count += 1
    return {"file": "../../smollm2/text.txt", "ctx": ctx, "tokens": len(ids),
            "tokens_scored": count, "value": float(np.exp(nll / count))}


def make_variant(name, overrides, tok, text):
    ov = dict(overrides)
    cfg = LlamaConfig(vocab_size=VOCAB, num_hidden_layers=2, max_position_embeddings=256,
                      rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                      initializer_range=0.08, **ov)
    torch.manual_seed(1234)
    model = LlamaForCausalLM(cfg).eval().float()
    # Norm weights and biases are ones / zeros at init: randomise them so they are tested.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))

    ids = tok.encode(text).ids[:NUM_TOKENS]
    assert len(ids) == NUM_TOKENS
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float().numpy()
    greedy, margin = greedy_margin(model, ids[:PROMPT_LEN])
    print(f"{name}: logits max|.|={np.abs(logits).max():.3f} greedy min margin={margin:.4g}")
    if margin < 1e-3:
        sys.exit(f"{name}: greedy margin {margin} too small for a stable golden; change the seed")

    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(classic_config(cfg, ov), f, indent=2, sort_keys=True)
    for extra in ("generation_config.json",):
        path = os.path.join(out, extra)
        if os.path.exists(path):
            os.remove(path)
    if name == "tied":
        write_gguf(model, cfg, os.path.join(out, "model.gguf"))
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                   "add_bos_token": False, "model_max_length": 256}, f, indent=2)
    logits.astype("<f4").tofile(os.path.join(out, "logits.f32"))
    ppl = perplexity(model, tok.encode(text).ids, PPL_CTX)
    print(f"{name}: perplexity(ctx={PPL_CTX}) = {ppl['value']:.4f} over {ppl['tokens']} tokens")
    golden = {"tokens": ids, "vocab_size": VOCAB, "logits_file": "logits.f32",
              "prompt": ids[:PROMPT_LEN], "greedy": greedy, "greedy_min_margin": margin,
              "perplexity": ppl,
              "source": f"transformers {__import__('transformers').__version__}, "
                        f"torch {torch.__version__}, float32"}
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)


def main():
    tok, text = train_tokenizer()
    for name, overrides in VARIANTS:
        make_variant(name, overrides, tok, text)


if __name__ == "__main__":
    main()
