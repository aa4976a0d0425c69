"""Connection and process lifecycle: a client that disconnects mid-stream frees its request,
SIGTERM drains (in-flight requests finish or end with "abort", exit code 0, 503 meanwhile),
and 64 concurrent streams all complete."""

import asyncio
import re
import threading
import time

import httpx

from conftest import MODEL_NAME
from sse import collect_stream, read_events


def metric(base_url, name, labels=""):
    text = httpx.get(base_url + "/metrics").text
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def test_metrics_names(base_url):
    text = httpx.get(base_url + "/metrics").text
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                 "vllm:kv_cache_usage_perc", "vllm:prompt_tokens_total",
                 "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_bucket",
                 "vllm:inter_token_latency_seconds_bucket",
                 "vllm:e2e_request_latency_seconds_bucket", "vllm:num_preemptions_total",
                 "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total",
                 "vllm:request_success_total"):
        assert name in text, name
    assert f'model_name="{MODEL_NAME}"' in text


def test_disconnect_mid_stream_aborts(base_url):
    aborted_before = metric(base_url, "vllm:request_success_total",
                            'finished_reason="abort"') or 0
    body = {"model": MODEL_NAME, "prompt": "Write a long story:", "max_tokens": 800,
            "ignore_eos": True, "stream": True}
    with httpx.stream("POST", base_url + "/v1/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        events = read_events(r)
        for _ in range(3):
            next(events)
    # Closed: the request must be aborted promptly, and the server keeps answering.
    deadline = time.time() + 10
    while time.time() < deadline:
        running = metric(base_url, "vllm:num_requests_running")
        aborted = metric(base_url, "vllm:request_success_total", 'finished_reason="abort"')
        if running == 0 and aborted is not None and aborted > aborted_before:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"request still running: running={running} aborted={aborted}")
    r = httpx.post(base_url + "/v1/completions",
                   json={"model": MODEL_NAME, "prompt": "Hi", "max_tokens": 2})
    assert r.status_code == 200


def test_64_concurrent_streams(base_url):
    async def one(client, i):
        body = {"model": MODEL_NAME, "prompt": f"Number {i}:", "max_tokens": 6,
                "temperature": 0, "stream": True}
        async with client.stream("POST", "/v1/completions", json=body) as r:
            assert r.status_code == 200
            done = False
            n = 0
            async for line in r.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data:"):
                    n += 1
            return done, n

    async def main():
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(64)))

    results = asyncio.run(main())
    assert all(done for done, _ in results), results
    assert all(n >= 1 for _, n in results)


def test_sigterm_drains(start_server):
    srv = start_server("--max-model-len", "512", "--shutdown-timeout", "2")
    body = {"model": MODEL_NAME, "prompt": "Tell me everything:", "max_tokens": 450,
            "ignore_eos": True, "stream": True}
    results = [None] * 3
    started = [threading.Event() for _ in results]

    def run(i):
        with httpx.stream("POST", srv.base_url + "/v1/completions", json=body,
                          timeout=60) as r:
            assert r.status_code == 200
            chunks = []
            done = False
            for kind, value in read_events(r):
                if kind != "data":
                    continue
                if value == "[DONE]":
                    done = True
                    break
                chunks.append(value)
                started[i].set()
            results[i] = (chunks, done)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for e in started:
        assert e.wait(60)
    # Connections opened before the signal get 503 once draining.
    kept_ready = httpx.Client(base_url=srv.base_url, timeout=30)
    kept_post = httpx.Client(base_url=srv.base_url, timeout=30)
    assert kept_ready.get("/health").status_code == 200
    assert kept_post.get("/health").status_code == 200
    srv.proc.send_signal(15)
    time.sleep(0.3)
    r = kept_ready.get("/ready")
    assert r.status_code == 503
    r = kept_post.post("/v1/completions", json={"model": MODEL_NAME, "prompt": "x",
                                                "max_tokens": 2})
    assert r.status_code == 503
    for t in threads:
        t.join(60)
    assert srv.proc.wait(30) == 0, srv.log()
    for chunks, done in results:
        assert done, "stream ended without [DONE]"
        reasons = [c["choices"][0]["finish_reason"] for c in chunks
                   if c["choices"] and c["choices"][0]["finish_reason"]]
        assert reasons and reasons[-1] in ("length", "abort"), reasons
    kept_ready.close()
    kept_post.close()
