#!/usr/bin/env python3
"""Prefill and decode tokens/s of Tessera against llama.cpp, side by side in one run.

Both engines load the same GGUF with the same thread count; each measurement alternates
between them (Tessera, llama.cpp, Tessera, ...) so machine noise hits both alike, and the
median of --repeats runs is reported with the ratio. llama.cpp runs through llama-cpp-python
(scripts/requirements-oracle.txt). Results are written as JSON under bench/results/.

  python bench/compare_llamacpp.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf --threads 2
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def tessera_run(binary, model, threads, prefill, decode):
    out = subprocess.run(
        [binary, "--model", model, "--threads", str(threads), "--prefill", str(prefill),
         "--decode", str(decode)], check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    return {"prefill_tokens_per_s": report["prefill_tok_s"],
            "decode_tokens_per_s": report["decode_tok_s"]}


class LlamaCpp:
    def __init__(self, model, threads, ctx):
        from llama_cpp import Llama  # noqa: imported lazily: only the oracle venv has it
        self.llm = Llama(model_path=model, n_ctx=ctx, n_threads=threads,
                         n_threads_batch=threads, n_batch=512, n_ubatch=512, verbose=False)

    def run(self, prefill, decode):
        llm = self.llm
        tokens = [(i * 7919 + 13) % 40000 + 100 for i in range(prefill)]
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        t1 = time.perf_counter()
        next_token = tokens[-1]
        for i in range(decode):
            llm.eval([next_token])
            next_token = (next_token * 31 + i) % 40000 + 100
        t2 = time.perf_counter()
        return {"prefill_tokens_per_s": prefill / (t1 - t0),
                "decode_tokens_per_s": decode / (t2 - t1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--binary", default=str(ROOT / "build/bench/llama_decode_bench"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    peer = LlamaCpp(args.model, args.threads, args.prefill + args.decode + 16)
    peer.run(32, 8)  # warm-up: page in the model
    runs = {"tessera": [], "llama.cpp": []}
    for _ in range(args.repeats):
        runs["tessera"].append(tessera_run(args.binary, args.model, args.threads,
                                           args.prefill, args.decode))
        runs["llama.cpp"].append(peer.run(args.prefill, args.decode))

    def median(name, key):
        return statistics.median(r[key] for r in runs[name])

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "model": os.path.basename(args.model), "threads": args.threads,
        "prefill_tokens": args.prefill, "decode_tokens": args.decode, "repeats": args.repeats,
        "runs": runs,
    }
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s"):
        t, p = median("tessera", key), median("llama.cpp", key)
        result[key] = {"tessera": round(t, 2), "llama.cpp": round(p, 2), "ratio": round(t / p, 3)}
        print(f"{key:22s} tessera {t:8.2f}  llama.cpp {p:8.2f}  ratio {t / p:.3f}")
    out = pathlib.Path(args.out) if args.out else (
        ROOT / "bench/results" / f"llama_cpu_{datetime.date.today().isoformat()}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
