"""Connection and process lifecycle: a client that disconnects mid-stream frees its request,
SIGTERM drains (in-flight requests finish or end with "abort", exit code 0, 503 meanwhile),
64 concurrent streams all complete, the loading phase (/health 200, /ready and model routes
503), SSE keep-alive comments during a long prefill, and what a hostile or odd client meets:
idle and read timeouts, a body that never completes, dribbled headers, pipelining, chunked
request bodies, `Expect: 100-continue`, and the connection cap."""

import asyncio
import re
import socket
import threading
import time

import httpx
import openai
import pytest

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


# ---- loading phase ---------------------------------------------------------------------------

def test_loading_phase_503(start_server):
    # TESSERA_DEBUG_LOAD_DELAY_MS (test-only) holds the server in its loading phase.
    srv = start_server("--max-model-len", "256", env={"TESSERA_DEBUG_LOAD_DELAY_MS": "2500"},
                       wait=False)
    srv.wait_listening()
    with httpx.Client(base_url=srv.base_url, timeout=10) as http:
        assert http.get("/health").status_code == 200
        r = http.get("/ready")
        assert r.status_code == 503 and r.json() == {"status": "loading"}
        for method, path, body in (
                ("POST", "/v1/completions", {"model": MODEL_NAME, "prompt": "Hi",
                                             "max_tokens": 2}),
                ("POST", "/v1/chat/completions",
                 {"model": MODEL_NAME, "messages": [{"role": "user", "content": "Hi"}]}),
                ("GET", "/v1/models", None)):
            r = http.request(method, path, json=body)
            assert r.status_code == 503, (path, r.text)
            assert r.headers.get("retry-after") == "1"
            error = r.json()["error"]
            assert error["type"] == "server_error" and error["code"] == "model_loading"
            assert error["message"]
    client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=2)
    assert info.value.status_code == 503
    assert "ready in" not in srv.log(), "the load delay ended before the checks did"
    srv.wait_ready()
    out = client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=2)
    assert out.choices[0].finish_reason in ("length", "stop")
    assert srv.stop() == 0


# ---- a server with tiny limits: keep-alive comments, timeouts, hostile clients ---------------

READ_TIMEOUT_S = 1.0
IDLE_TIMEOUT_S = 1.5
BODY_LIMIT = 65536
MAX_CONNECTIONS = 8
# ~70 tokens with 16 tokens per engine step: the prefill spans several steps.
LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 7


@pytest.fixture(scope="module")
def tight(start_server):
    return start_server("--max-model-len", "512", "--max-num-batched-tokens", "16",
                        "--sse-keepalive-interval", "0.05",
                        "--http-read-timeout", str(READ_TIMEOUT_S),
                        "--http-idle-timeout", str(IDLE_TIMEOUT_S),
                        "--max-request-body-bytes", str(BODY_LIMIT),
                        "--max-connections", str(MAX_CONNECTIONS))


def raw_connect(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def seconds_until_closed(sock, limit=10.0):
    """Reads (and drops) until the server closes; returns the seconds that took."""
    start = time.time()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.time() - start


def read_all(sock, limit=30.0):
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_sse_keepalive_during_prefill(tight):
    body = {"model": MODEL_NAME, "prompt": LONG_PROMPT, "max_tokens": 3, "temperature": 0,
            "stream": True}
    kinds = []
    with httpx.stream("POST", tight.base_url + "/v1/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line == ": keep-alive":
                kinds.append("keep-alive")
            elif line.startswith("data:"):
                kinds.append("[DONE]" if line == "data: [DONE]" else "data")
            else:
                assert line == "", line  # nothing else goes on the wire
    assert "data" in kinds and kinds[-1] == "[DONE]", kinds
    assert kinds.index("keep-alive") < kinds.index("data"), kinds
    # The official client skips the comments and parses the same stream.
    client = openai.OpenAI(base_url=tight.base_url + "/v1", api_key="unused", max_retries=0,
                           timeout=60)
    chunks = list(client.completions.create(model=MODEL_NAME, prompt=LONG_PROMPT, max_tokens=3,
                                            temperature=0, stream=True))
    assert chunks and chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].text for c in chunks)


def test_idle_connection_closed(tight):
    s = raw_connect(tight)  # never sends a byte
    elapsed = seconds_until_closed(s)
    assert IDLE_TIMEOUT_S * 0.8 < elapsed < IDLE_TIMEOUT_S + 3, elapsed
    s.close()
    # A keep-alive connection after one exchange is closed the same way.
    s = raw_connect(tight)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    elapsed = seconds_until_closed(s)
    assert elapsed < IDLE_TIMEOUT_S + 3, elapsed
    s.close()


def test_dribbled_headers_cut_off(tight):
    # Slowloris: a byte every 0.2 s, each well inside the idle timeout; the whole request has
    # READ_TIMEOUT_S from its first byte.
    s = raw_connect(tight)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\n")
    start = time.time()
    closed = False
    while time.time() - start < READ_TIMEOUT_S + 4:
        try:
            s.sendall(b"X")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        s.settimeout(0.2)
        try:
            if s.recv(4096) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
            break
    elapsed = time.time() - start
    s.close()
    assert closed and elapsed < READ_TIMEOUT_S + 3, elapsed


def test_body_never_completes(tight):
    s = raw_connect(tight)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nContent-Length: 1000\r\n\r\n{\"model\": ")
    elapsed = seconds_until_closed(s)
    s.close()
    assert elapsed < READ_TIMEOUT_S + 3, elapsed
    assert httpx.get(tight.base_url + "/ready").status_code == 200


def test_pipelined_requests(tight):
    body = ('{"model": "%s", "prompt": "Hi", "max_tokens": 2}' % MODEL_NAME).encode()
    post = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    s = raw_connect(tight)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + post +
              b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n" + post +
              b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_all(s)
    s.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)  # bodies end without a newline
    assert statuses == [b"200", b"200", b"404", b"200", b"200"], data[:2000]
    assert data.count(b'"text_completion"') == 2


def test_chunked_request_body(tight):
    def parts(text):
        for i in range(0, len(text), 7):
            yield text[i:i + 7].encode()

    payload = '{"model": "%s", "prompt": "Hello", "max_tokens": 2}' % MODEL_NAME
    r = httpx.post(tight.base_url + "/v1/completions", content=parts(payload),
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "text_completion"
    # The body limit holds for chunked bodies too (no Content-Length to check up front).
    big = '{"model": "%s", "prompt": "%s"}' % (MODEL_NAME, "x" * (BODY_LIMIT + 100))
    r = httpx.post(tight.base_url + "/v1/completions",
                   content=(big[i:i + 4096].encode() for i in range(0, len(big), 4096)),
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "request_too_large"


def test_expect_100_continue(tight):
    body = ('{"model": "%s", "prompt": "Hi", "max_tokens": 1}' % MODEL_NAME).encode()
    s = raw_connect(tight)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
              % len(body))
    s.settimeout(READ_TIMEOUT_S * 0.8)  # well before the read deadline
    assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    data = read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:500]


def test_connection_cap(tight):
    held = [raw_connect(tight) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.3)
    extra = raw_connect(tight)
    try:
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert read_all(extra, limit=5) == b""  # closed without an answer
    extra.close()
    for s in held:
        s.close()
    # Once those are gone, connections are served again.
    deadline = time.time() + 5
    while True:
        try:
            if httpx.get(tight.base_url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            if time.time() > deadline:
                raise
        time.sleep(0.1)
