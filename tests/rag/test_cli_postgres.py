"""The `rag` commands, unchanged, on a postgres index: only [index] backend (here RAG_INDEX__BACKEND) and the DSN's
variable differ from the embedded set-up. ingest, retrieve, ask, eval, keys, serve, audit and stats run as real
processes: eval gives the metrics the same eval gives on an embedded index of the same files, and audit shows the
requests a key made through `rag serve` (two servers at once: tests/server/test_server_replicas.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from index_backends import backend_env, pg_target

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
LECTURE = ROOT / "corpora" / "lecture"


def test_every_command_works_on_a_postgres_index(postgres, rag_cli, tmp_path: Path) -> None:
    target = pg_target("cli")
    env = backend_env(target)

    def rag(*args: object, timeout: float = 600, on: dict[str, str] = env) -> dict:
        out = rag_cli.run([*args, "--json"], extra_env=on, timeout=timeout)
        assert out.returncode == 0, f"rag {args}: {out.stdout}\n{out.stderr}"
        return json.loads(out.stdout)

    report = rag("ingest", LECTURE / "docs")
    assert report["added"] >= 1 and report["index"] == str(target) and not report["failed"]
    again = rag("ingest", LECTURE / "docs")
    assert again["unchanged"] == report["added"] and again["chunks_embedded"] == 0
    hits = rag("retrieve", "Which year did GANs appear?", "--k", "3")["hits"]
    assert any("2014" in h["text"] for h in hits)
    answer = rag("ask", "In which year did GANs appear?", "--llm", "extractive")
    assert not answer["refused"] and answer["citations"][0]["source"] == "genai-lecture.txt", answer
    stats = rag("stats")
    assert stats["consistent"] and stats["index"] == str(target) and stats["index_type"] == "hnsw"
    assert stats["chunks"] == report["chunks_total"] and stats["size_bytes"] > 0
    # A second document, so that ranking matters (with one file eval calls hit@k not applicable), then the same eval
    # on the postgres index and on an embedded index of the same two folders.
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "harbour.txt").write_text("The harbour crane of Skerry Island lifts forty tonnes since its refit.\n")
    evals = {}
    for side, where, on in (("postgres", [], env), ("embedded", ["--index", tmp_path / "embedded"], {})):
        folders = [decoy] if side == "postgres" else [LECTURE / "docs", decoy]
        built = rag("ingest", *folders, *where, on=on)
        assert built["documents_total"] == 2 and built["chunks_total"] == report["chunks_total"] + 1, built
        evals[side] = rag("eval", LECTURE / "questions" / "dev.jsonl", "--llm", "extractive", "--limit", "3",
                          "--out", tmp_path / f"run-{side}", *where, on=on, timeout=900)
    metrics = evals["postgres"]
    retrieval = metrics["retrieval"]
    assert retrieval["applicable"] and retrieval["questions"] == 3, retrieval
    figures = [retrieval[k] for k in ("hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10")]
    assert all(0.0 <= f <= 1.0 for f in figures) and retrieval["hit@5"] == 1.0, retrieval  # the lecture in the top 5
    assert 0.0 < metrics["answer"]["keyword_accuracy"] <= 1.0, metrics["answer"]
    for part in ("retrieval", "answer", "counts"):  # the same figures as on the embedded backend
        assert metrics[part] == evals["embedded"][part], (part, metrics[part], evals["embedded"][part])

    key = rag("keys", "create", "--name", "ops", "--role", "admin", "--tenant", "*")
    assert key["key"].startswith("rag_")
    assert [k["name"] for k in rag("keys", "list")["keys"]] == ["ops"]
    assert rag("audit")["rows"] == []
    question = "In which year did GANs appear?"
    with _serving(rag_cli, tmp_path, env) as url:
        r = httpx.post(f"{url}/v1/ask", json={"question": question}, headers={"Authorization": f"Bearer {key['key']}"})
        assert r.status_code == 200 and r.json()["citations"][0]["source"] == "genai-lecture.txt", r.text
        assert rag("keys", "revoke", key["id"])["revoked"] == key["id"]
        r = httpx.post(f"{url}/v1/ask", json={"question": question}, headers={"Authorization": f"Bearer {key['key']}"})
        assert r.status_code == 401, r.text
    rows = rag("audit")["rows"]  # newest first
    assert [(r["route"], r["status"], r["key_id"]) for r in rows] == [
        ("POST /v1/ask", 401, None), ("POST /v1/ask", 200, key["id"])], rows
    assert rows[1]["question"] == question and rows[1]["sources"] == ["genai-lecture.txt"] and not rows[1]["refused"]


class _serving:
    """`rag serve` over the postgres index (a local folder for its uploads) on a free loopback port, until exit."""

    def __init__(self, rag_cli, tmp: Path, env: dict[str, str]) -> None:  # noqa: ANN001
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.args = ["serve", "--index", tmp / "local", "--host", "127.0.0.1", "--port", str(self.port),
                     "--llm", "extractive"]
        self.rag_cli, self.env = rag_cli, env

    def __enter__(self) -> str:
        self.proc = self.rag_cli.popen(self.args, extra_env=self.env)  # its few log lines fit the pipes' buffers
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.2)
        self.__exit__()
        raise AssertionError(f"rag serve did not start (exit {self.proc.returncode})")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()  # a clean shutdown writes the audit rows still queued
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
