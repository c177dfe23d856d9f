"""A local OpenAI-compatible server (llama-cpp-python's) on loopback, for judges that speak only HTTP (ragas)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eval.errors import EvalError

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base_url: str, proc: subprocess.Popen | None = None, timeout: float = 180.0) -> list[str]:
    """Poll GET {base_url}/models until it answers; returns the served model ids."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EvalError(f"the LLM server exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=5) as resp:
                data = json.loads(resp.read())
                return [m.get("id", "") for m in data.get("data", [])]
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as e:
            last = str(e)
            time.sleep(0.5)
    raise EvalError(f"the LLM server at {base_url} was not ready after {timeout:.0f}s ({last})")


@contextmanager
def llama_server(model_path: str | Path, *, n_ctx: int = 4096, threads: int = 1, port: int | None = None,
                 log_file: str | Path | None = None, timeout: float = 180.0,
                 alias: str | None = None) -> Iterator[str]:
    """Run `python -m llama_cpp.server` for a GGUF file on 127.0.0.1; yields its base URL (".../v1")."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", str(threads), "--n_ctx", str(n_ctx)]
    if alias:
        cmd += ["--model_alias", alias]
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(base_url, proc, timeout)
        log.info("llama.cpp server for %s ready at %s", model_path, base_url)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_file:
            out.close()  # type: ignore[union-attr]
