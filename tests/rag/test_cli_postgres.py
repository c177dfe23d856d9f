"""The `rag` commands, unchanged, on a postgres index: only [index] backend (here RAG_INDEX__BACKEND) and the DSN's
variable differ from the embedded set-up. ingest, retrieve, ask, eval, keys, audit and stats run as real processes
(serve: tests/server/test_server_replicas.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from index_backends import backend_env, pg_target

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
LECTURE = ROOT / "corpora" / "lecture"


def test_every_command_works_on_a_postgres_index(postgres, rag_cli, tmp_path: Path) -> None:
    target = pg_target("cli")
    env = backend_env(target)

    def rag(*args: object, timeout: float = 600) -> dict:
        out = rag_cli.run([*args, "--json"], extra_env=env, timeout=timeout)
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
    metrics = rag("eval", LECTURE / "questions" / "dev.jsonl", "--llm", "extractive", "--limit", "3",
                  "--out", tmp_path / "run", timeout=900)
    assert metrics, metrics
    key = rag("keys", "create", "--name", "ops", "--role", "admin", "--tenant", "*")
    assert key["key"].startswith("rag_")
    assert [k["name"] for k in rag("keys", "list")["keys"]] == ["ops"]
    assert rag("keys", "revoke", key["id"])["revoked"] == key["id"]
    assert rag("audit")["rows"] == []
