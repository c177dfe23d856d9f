"""The CLI of the ingestion stage, as a user runs it: `rag ingest`, `rag retrieve`, `rag stats` (JSON and text)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SUMMARY_KEYS = {"index", "added", "updated", "unchanged", "removed", "failed", "skipped", "added_files",
                "updated_files", "unchanged_files", "removed_files", "chunks_added", "chunks_removed",
                "chunks_embedded", "chunks_total", "documents_total", "pages", "seconds", "generation"}
HIT_KEYS = {"chunk_id", "source", "page", "section", "score", "text"}


@pytest.fixture(scope="module")
def cli_corpus(tmp_path_factory: pytest.TempPathFactory, make_pdf: Callable[..., Path],
               make_text: Callable[..., str]) -> Path:
    root = tmp_path_factory.mktemp("cli") / "docs"
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "install.md").write_text(
        "# Install\n\nRun the installer as an administrator.\n\n## Proxy\n\nSet HTTPS_PROXY before running the "
        "installer behind a corporate proxy.\n")
    (root / "faq.html").write_text(
        "<html><head><title>FAQ</title></head><body><nav>Home</nav><main><h1>FAQ</h1><h2>Licence</h2>"
        "<p>The software is released under the Apache licence, version 2.0.</p></main></body></html>")
    make_pdf(root / "handbook.pdf", [make_text(1, 120), "The emergency exit is behind the blue door on floor 3.",
                                     make_text(2, 120)])
    (root / "notes.txt").write_text("Meeting notes: the café opens at seven.\n")
    return root


@pytest.fixture(scope="module")
def cli_index(cli_corpus: Path, rag_cli, tmp_path_factory: pytest.TempPathFactory):
    index = tmp_path_factory.mktemp("cli-index") / "index"
    out = rag_cli.run(["ingest", cli_corpus, "--index", index, "--json"])
    return index, out


def test_ingest_json_reports_what_was_done(cli_index, index_snapshot) -> None:
    index, out = cli_index
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip().splitlines()) == 1  # one JSON object, nothing else on stdout
    report = json.loads(out.stdout)
    assert set(report) >= SUMMARY_KEYS
    assert sorted(report["added_files"]) == ["faq.html", "guides/install.md", "handbook.pdf", "notes.txt"]
    assert (report["added"], report["updated"], report["unchanged"], report["removed"]) == (4, 0, 0, 0)
    assert report["failed"] == [] and report["skipped"] == []
    assert report["pages"] == 3 and report["documents_total"] == 4 and report["generation"] == 1
    assert report["chunks_added"] == report["chunks_total"] == report["chunks_embedded"] >= 4
    assert report["index"] == str(index)
    snap = index_snapshot(index)
    assert snap.consistent and len(snap.chunk_ids) == report["chunks_total"]


def test_retrieve_json_lists_hits_best_first_with_provenance(cli_index, rag_cli) -> None:
    index, _ = cli_index
    out = rag_cli.run(["retrieve", "Where is the emergency exit?", "--index", index, "--json", "--k", "3",
                       "--mode", "dense"])
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema_version"] == 1 and data["query"] == "Where is the emergency exit?"
    hits = data["hits"]
    assert isinstance(hits, list) and len(hits) == 3
    assert all(set(h) == HIT_KEYS for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    top = hits[0]
    assert (top["source"], top["page"], top["section"]) == ("handbook.pdf", 2, "")
    assert "blue door" in top["text"] and len(top["chunk_id"]) == 24
    assert len({h["chunk_id"] for h in hits}) == 3


def test_retrieve_filters_and_keyword_mode_in_process(cli_index, embedder) -> None:
    from rag.api import open_pipeline
    from rag.config import Config

    index, _ = cli_index
    with open_pipeline(index, Config(), embedder=embedder) as rag:
        hits = rag.retrieve("installer proxy", k=5, mode="keyword", filters=["type=markdown"])
        assert hits and {h.chunk.source for h in hits} == {"guides/install.md"}
        assert hits[0].chunk.section == "Install > Proxy"
        assert rag.retrieve("licence", k=5, mode="hybrid", filters=["source=*.pdf"])[0].chunk.source == "handbook.pdf"
        assert rag.retrieve("café", k=1, mode="keyword")[0].to_dict()["source"] == "notes.txt"


def test_stats_json_and_text(cli_index, rag_cli) -> None:
    index, _ = cli_index
    out = rag_cli.run(["stats", "--index", index, "--json"])
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["consistent"] is True and stats["problems"] == []
    assert (stats["documents"], stats["embedding_model"], stats["dim"], stats["index_type"]) == (
        4, "bundled:all-MiniLM-L6-v2", 384, "flat")
    assert stats["chunks"] > 0 and stats["size_bytes"] > 0
    text = rag_cli.run(["stats", "--index", index])
    assert text.returncode == 0 and "consistent: yes" in text.stdout and "documents:  4" in text.stdout


def test_incremental_cli_runs_unchanged_prune_and_access(cli_corpus: Path, rag_cli, tmp_path: Path, embedder,
                                                         index_snapshot) -> None:
    from ingest.config import IngestConfig
    from ingest.pipeline import ingest_paths

    corpus, index = tmp_path / "docs", tmp_path / "index"
    shutil.copytree(cli_corpus, corpus)
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)  # built in-process: the CLI runs below
    again = rag_cli.run(["ingest", corpus, "--index", index, "--json"])  # need no model
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["unchanged"], report["added"], report["chunks_embedded"], report["generation"]) == (4, 0, 0, 1)

    (corpus / "notes.txt").unlink()
    pruned = rag_cli.run(["ingest", corpus, "--index", index, "--prune", "--json"])
    assert pruned.returncode == 0, pruned.stderr
    report = json.loads(pruned.stdout)
    assert report["removed_files"] == ["notes.txt"] and report["documents_total"] == 3

    tagged = rag_cli.run(["ingest", corpus, "--index", index, "--tenant", "acme", "--tag", "manuals", "--json"])
    assert json.loads(tagged.stdout)["chunks_embedded"] == 0
    conn = sqlite3.connect(index / "store.sqlite")
    try:  # acme gets its own copies; the documents without a tenant stay as they were
        assert set(conn.execute("SELECT tenant, tags FROM documents")) == {("acme", '["manuals"]'), (None, "[]")}
    finally:
        conn.close()
    assert index_snapshot(index).consistent


def test_ingest_into_an_index_of_another_model_exits_1(cli_index, cli_corpus: Path, rag_cli, tmp_path: Path) -> None:
    index, _ = cli_index
    config = tmp_path / "other.toml"
    config.write_text(f'[embedding]\nmodel = "{tmp_path / "another-model"}"\n')
    out = rag_cli.run(["--config", config, "ingest", cli_corpus, "--index", index])
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: ") and "'bundled:all-MiniLM-L6-v2'" in out.stderr
    out = rag_cli.run(["--config", config, "ingest", cli_corpus, "--index", index, "--json"])
    assert out.returncode == 1 and "'bundled:all-MiniLM-L6-v2'" in json.loads(out.stdout)["error"]["message"]


def test_stats_exits_1_on_an_inconsistent_or_missing_index(cli_index, rag_cli, tmp_path: Path) -> None:
    src_index, _ = cli_index
    index = tmp_path / "broken"
    shutil.copytree(src_index, index)
    conn = sqlite3.connect(index / "store.sqlite")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("DELETE FROM chunks WHERE id = (SELECT min(id) FROM chunks)")  # a chunk row lost, its vector kept
    conn.commit()
    conn.close()
    out = rag_cli.run(["stats", "--index", index, "--json"])
    assert out.returncode == 1
    stats = json.loads(out.stdout)
    assert stats["consistent"] is False and "1 vector(s) without a chunk" in stats["problems"][0]

    missing = rag_cli.run(["stats", "--index", tmp_path / "nothing-here"])
    assert missing.returncode == 1 and "is not a rag index" in missing.stderr
