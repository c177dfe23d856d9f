"""The app factory: `uvicorn --factory rag.server:app_from_environment` serves an index found the way the CLI
finds its config ($RAG_CONFIG, RAG_<TABLE>__<KEY> overrides)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from eval.llm_server import free_port

pytestmark = pytest.mark.slow


def test_uvicorn_factory_serves_the_configured_index(tmp_path: Path, embedder) -> None:
    from ingest.config import IngestConfig
    from ingest.pipeline import ingest_paths

    lecture_index = tmp_path / "index"
    ingest_paths([Path(__file__).resolve().parents[2] / "corpora" / "lecture" / "docs"], lecture_index,
                 IngestConfig(), embedder=embedder)
    config = tmp_path / "server.toml"
    config.write_text('[answer]\nllm = "extractive"\n\n[server]\nrate_limit_per_minute = 0\n')
    port = free_port()
    env = {**os.environ, "RAG_CONFIG": str(config), "RAG_INDEX__DIR": str(lecture_index),
           "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    key = subprocess.run([sys.executable, "-m", "rag.cli", "keys", "create", "--name", "t", "--tenant", "*",
                          "--index", str(lecture_index), "--json"], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    token = json.loads(key.stdout)["key"]
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "rag.server:app_from_environment",
                             "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "the factory app did not start"
                time.sleep(0.5)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/retrieve", method="POST",
                                     data=json.dumps({"query": "When did GANs appear?", "k": 3}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            hits = json.loads(r.read())
        assert hits and hits[0]["source"] == "genai-lecture.txt"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
