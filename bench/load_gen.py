#!/usr/bin/env python3
"""Load generator for OpenAI-compatible servers (loopback only): N streaming completions at
concurrency C with fixed prompt/output lengths; reports TTFT, TPOT, ITL (p50/p90/p99) and
throughput. With --compare it starts `tessera serve` and llama.cpp's server (llama-cpp-python)
on the same GGUF in turn and runs every concurrency level against each.

  python bench/load_gen.py --base-url http://127.0.0.1:8000 -n 32 -c 4
  python bench/load_gen.py --compare --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --concurrency 1 4 16 --out bench/results/serve_cpu_smollm2_$(date +%F).json
"""

import argparse
import asyncio
import datetime
import json
import os
import pathlib
import platform
import signal
import socket
import subprocess
import sys
import time

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORDS = ("the quick brown fox jumps over a lazy dog while seven bright stars watch "
         "from far above the quiet river valley").split()


def make_prompt(num_words, i):
    # Distinct per request (no shared prefix beyond the first word), about one token a word.
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(num_words)]
    return f"Request {i}: " + " ".join(words)


def percentiles(values):
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    s = sorted(values)

    def pick(q):
        return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99),
            "mean": sum(s) / len(s)}


async def one_request(client, model, prompt, max_tokens, api, temperature=0.0):
    """Streams one request; returns per-request timing (seconds) and token counts."""
    body = {"model": model, "max_tokens": max_tokens, "temperature": temperature, "stream": True,
            "stream_options": {"include_usage": True}}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
        path = "/v1/chat/completions"
    else:
        body["prompt"] = prompt
        path = "/v1/completions"
    start = time.perf_counter()
    token_times = []
    usage = None
    async with client.stream("POST", path, json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"ok": False, "status": r.status_code, "error": r.text[:200]}
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                piece = choice.get("text") if api != "chat" else \
                    (choice.get("delta") or {}).get("content")
                if piece:
                    token_times.append(time.perf_counter())
    end = time.perf_counter()
    if not token_times:
        return {"ok": False, "status": 200, "error": "no tokens"}
    out_tokens = (usage or {}).get("completion_tokens") or len(token_times)
    ttft = token_times[0] - start
    itl = [b - a for a, b in zip(token_times, token_times[1:])]
    tpot = (end - token_times[0]) / max(1, out_tokens - 1)
    return {"ok": True, "ttft": ttft, "tpot": tpot, "itl": itl, "e2e": end - start,
            "output_tokens": out_tokens,
            "prompt_tokens": (usage or {}).get("prompt_tokens")}


async def run_level(base_url, model, num_requests, concurrency, prompt_words, max_tokens, api,
                    temperature):
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
        # Warm-up (not counted).
        await one_request(client, model, make_prompt(prompt_words, 10_000), 4, api, temperature)

        async def guarded(i):
            async with sem:
                return await one_request(client, model, make_prompt(prompt_words, i),
                                         max_tokens, api, temperature)
        start = time.perf_counter()
        results = await asyncio.gather(*(guarded(i) for i in range(num_requests)))
        wall = time.perf_counter() - start
    ok = [r for r in results if r["ok"]]
    out_tokens = sum(r["output_tokens"] for r in ok)
    return {
        "concurrency": concurrency,
        "num_requests": num_requests,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": [r for r in results if not r["ok"]][:3],
        "wall_s": wall,
        "output_tokens": out_tokens,
        "output_tok_per_s": out_tokens / wall if wall > 0 else None,
        "requests_per_s": len(ok) / wall if wall > 0 else None,
        "ttft_s": percentiles([r["ttft"] for r in ok]),
        "tpot_s": percentiles([r["tpot"] for r in ok]),
        "itl_s": percentiles([x for r in ok for x in r["itl"]]),
        "e2e_s": percentiles([r["e2e"] for r in ok]),
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        for path in ("/ready", "/v1/models"):
            try:
                if httpx.get(url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def start_tessera(args, port):
    binary = args.tessera_bin or next(
        (str(p) for p in sorted(ROOT.glob("build*/tessera")) if os.access(p, os.X_OK)), None)
    if binary is None:
        raise RuntimeError("no tessera binary (use --tessera-bin)")
    cmd = [binary, "serve", "--model", args.model, "--port", str(port), "--served-model-name",
           "bench", "--threads", str(args.threads), "--max-num-seqs", str(args.max_num_seqs),
           "--max-model-len", str(args.ctx)]
    settings = {"binary": binary, "argv": cmd[1:]}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), settings


def start_llamacpp(args, port):
    cmd = [args.llamacpp_python, "-m", "llama_cpp.server", "--model", args.model,
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(args.threads),
           "--n_ctx", str(args.ctx), "--model_alias", "bench", "--interrupt_requests", "False"]
    # NOTE: llama-cpp-python's server decodes one request at a time; by default a new request
    # interrupts the one streaming (interrupt_requests=True), which truncates outputs under
    # concurrency, so we make it queue instead.
    settings = {"argv": cmd[1:], "note": "llama-cpp-python's server serves one request at a "
                "time (others queue: --interrupt_requests False); n_ctx as tessera's "
                "--max-model-len"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), settings


def run_all_levels(base_url, model, args):
    levels = []
    for c in args.concurrency:
        n = max(args.num_requests, c) if args.num_requests else max(4, 2 * c)
        res = asyncio.run(run_level(base_url, model, n, c, args.prompt_words, args.max_tokens,
                                    args.api, args.temperature))
        levels.append(res)
        print_row(res)
    return levels


def print_row(r, server=""):
    def ms(x):
        return f"{x * 1000:8.1f}" if x is not None else "     n/a"
    print(f"{server:10s} c={r['concurrency']:3d} n={r['completed']:3d}/{r['num_requests']:3d} "
          f"tok/s={r['output_tok_per_s'] or 0:7.1f} "
          f"TTFT p50/p90/p99 ms={ms(r['ttft_s']['p50'])}{ms(r['ttft_s']['p90'])}"
          f"{ms(r['ttft_s']['p99'])}  TPOT p50 ms={ms(r['tpot_s']['p50'])}  "
          f"ITL p50/p99 ms={ms(r['itl_s']['p50'])}{ms(r['itl_s']['p99'])}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base-url", help="an already running server (else --compare)")
    p.add_argument("--served-model", default="bench", help="`model` field to send")
    p.add_argument("--compare", action="store_true",
                   help="start tessera and llama.cpp's server in turn on --model")
    p.add_argument("--model", default=str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--tessera-bin")
    p.add_argument("--llamacpp-python", default="/work/oracle-venv/bin/python")
    p.add_argument("--servers", nargs="+", default=["tessera", "llamacpp"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ctx", type=int, default=1024)
    p.add_argument("--max-num-seqs", type=int, default=64)
    p.add_argument("-n", "--num-requests", type=int, default=0,
                   help="requests per level (0: max(4, 2 * concurrency))")
    p.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--prompt-words", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--api", choices=["completions", "chat"], default="completions")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="0: greedy; > 0 exercises the samplers' draw")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    record = {"date": datetime.date.today().isoformat(), "host": platform.node(),
              "cpu_count": os.cpu_count(), "model": args.model,
              "workload": {"prompt_words": args.prompt_words, "max_tokens": args.max_tokens,
                           "api": args.api, "temperature": args.temperature, "stream": True,
                           "concurrency": args.concurrency,
                           "num_requests": args.num_requests or "max(4, 2*c)"},
              "servers": {}}
    if args.base_url:
        record["servers"]["external"] = {"base_url": args.base_url,
                                         "levels": run_all_levels(args.base_url,
                                                                  args.served_model, args)}
    elif args.compare:
        for name in args.servers:
            port = free_port()
            starter = start_tessera if name == "tessera" else start_llamacpp
            proc, settings = starter(args, port)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_ready(url, proc)
                print(f"--- {name} ({url})", flush=True)
                levels = run_all_levels(url, "bench", args)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            record["servers"][name] = {"settings": settings, "levels": levels}
    else:
        p.error("give --base-url or --compare")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
