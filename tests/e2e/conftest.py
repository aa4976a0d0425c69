"""Fixtures for the end-to-end suite: start `tessera serve` on the default SmolLM2 GGUF on a
free port and hand tests its base URL. The binary comes from $TESSERA_BIN (ctest sets it) or
the usual build folders; the model from $TESSERA_MODEL or models/. Missing either: skip."""

import os
import pathlib
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2"


def _find_binary():
    env = os.environ.get("TESSERA_BIN")
    if env:
        return pathlib.Path(env) if pathlib.Path(env).exists() else None
    for candidate in sorted(ROOT.glob("build*/tessera")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class ServerProcess:
    """One `tessera serve` child; stderr is collected on a thread (and printed on failure)."""

    def __init__(self, binary, model, extra_args=(), env=None):
        args = [str(binary), "serve", "--model", str(model), "--port", "0",
                "--served-model-name", MODEL_NAME, "--threads", "2"] + list(extra_args)
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})}, text=True)
        self.lines = []
        self.port = None
        self._port_seen = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._port_seen.set()
        self._port_seen.set()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def log(self):
        return "\n".join(self.lines[-60:])

    def wait_listening(self, timeout=30):
        self._port_seen.wait(timeout)
        if self.port is None:
            raise RuntimeError(f"server did not start:\n{self.log()}")

    def wait_ready(self, timeout=120):
        self.wait_listening()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def tessera_bin():
    binary = _find_binary()
    if binary is None:
        pytest.skip("tessera binary not found (set TESSERA_BIN or build into build*/)")
    return binary


@pytest.fixture(scope="session")
def model_path():
    model = pathlib.Path(os.environ.get("TESSERA_MODEL", DEFAULT_MODEL))
    if not model.exists():
        pytest.skip(f"default model {model} is missing (see scripts/setup.sh)")
    return model


@pytest.fixture(scope="session")
def start_server(tessera_bin, model_path):
    """Factory: start_server(args...) -> a ready ServerProcess, stopped at session end."""
    started = []

    def start(*extra_args, env=None, wait=True):
        server = ServerProcess(tessera_bin, model_path, extra_args, env)
        started.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server):
    """The shared server: default limits, a 1024-token context."""
    return start_server("--max-model-len", "1024", "--max-num-seqs", "64")


@pytest.fixture(scope="session")
def base_url(server):
    return server.base_url


@pytest.fixture()
def client(base_url):
    import openai
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=60)
