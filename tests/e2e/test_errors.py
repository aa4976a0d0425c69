"""Every error path answers an OpenAI error object with the right status: 400 bad value,
context_length_exceeded, 401 bad key, 404 model / route, 405, 413, 429, 503 while loading."""

import json

import httpx
import openai
import pytest

from conftest import MODEL_NAME


def error_of(response):
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    return err


def test_bad_value_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL_NAME, prompt="x", max_tokens=4, temperature=-1)
    assert e.value.status_code == 400


def test_malformed_json_is_400(base_url):
    r = httpx.post(base_url + "/v1/completions", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400
    error_of(r)


def test_context_length_exceeded(client):
    prompt = "hello " * 1500  # > 1024 tokens
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=4)
    assert e.value.status_code == 400
    assert e.value.code == "context_length_exceeded"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    assert e.value.status_code == 404


def test_unknown_route_404_and_wrong_method_405(base_url):
    r = httpx.get(base_url + "/v1/nothing")
    assert r.status_code == 404
    error_of(r)
    r = httpx.get(base_url + "/v1/chat/completions")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    error_of(r)


def test_big_body_is_413(base_url):
    body = json.dumps({"model": MODEL_NAME, "prompt": "x" * (9 * 1024 * 1024)})
    r = httpx.post(base_url + "/v1/completions", content=body.encode(),
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413
    error_of(r)
    assert httpx.get(base_url + "/health").status_code == 200


def test_garbage_does_not_crash(base_url, server):
    import socket
    host, port = "127.0.0.1", server.port
    for payload in [b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                    b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(payload)
            try:
                s.recv(4096)
            except OSError:
                pass
    assert httpx.get(f"http://{host}:{port}/health").status_code == 200


@pytest.fixture(scope="module")
def auth_server(start_server, tmp_path_factory):
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text("# test keys\nsk-good\n")
    return start_server("--api-key-file", str(key_file), "--max-model-len", "512")


def test_api_key(auth_server):
    url = auth_server.base_url
    bad = openai.OpenAI(base_url=url + "/v1", api_key="sk-bad", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.status_code == 401
    r = httpx.post(url + "/v1/completions", json={"model": MODEL_NAME, "prompt": "x"})
    assert r.status_code == 401
    assert error_of(r)["type"] == "authentication_error"
    good = openai.OpenAI(base_url=url + "/v1", api_key="sk-good", max_retries=0)
    assert good.models.list().data[0].id == MODEL_NAME
    out = good.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=2)
    assert out.choices
    # Probes and metrics stay open.
    for path in ("/health", "/ready", "/metrics"):
        assert httpx.get(url + path).status_code == 200, path


def test_concurrency_limit_is_429(start_server):
    srv = start_server("--max-concurrent-requests", "1", "--max-model-len", "512")
    body = {"model": MODEL_NAME, "prompt": "Count:", "max_tokens": 400, "ignore_eos": True,
            "stream": True}
    with httpx.Client(base_url=srv.base_url, timeout=60) as c:
        with c.stream("POST", "/v1/completions", json=body) as first:
            assert first.status_code == 200
            lines = first.iter_lines()
            next(lines)  # the first one is running
            r = httpx.post(srv.base_url + "/v1/completions",
                           json={"model": MODEL_NAME, "prompt": "x", "max_tokens": 2})
            if r.status_code != 429:
                rest = [next(lines, None) for _ in range(8)]
                raise AssertionError(f"{r.status_code} {r.text} first stream: {rest}")
            assert r.headers.get("retry-after") == "1"
            assert error_of(r)["type"] == "rate_limit_error"
    srv.stop()
