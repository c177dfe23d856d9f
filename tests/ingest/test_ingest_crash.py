"""Crash safety: one writer at a time, readers during an ingest, and kill -9 at any moment leaves a usable index.

The first two tests run on both backends; the crash points of a commit are each backend's own (this file: the
embedded FAISS + SQLite commit; test_ingest_pg_crash.py: PostgreSQL's transaction and kill -9 of its ingests).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from index_backends import backend_env, index_args

from ingest import collection as collection_mod
from ingest.backend import PostgresTarget, open_index
from ingest.collection import Collection
from ingest.config import IngestConfig
from ingest.errors import IndexLockedError
from ingest.index import FaissIndex
from ingest.pipeline import ingest_paths
from rag.config import RetrievalConfig
from rag.retrieve import Retriever

pytestmark = pytest.mark.slow

HOLD_LOCK = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()  # hold until the test closes our stdin
"""
HOLD_PG_WRITER = """
import sys
from ingest.backend import PostgresTarget, open_writer
writer = open_writer(PostgresTarget(dsn_env=sys.argv[1], schema=sys.argv[2]))  # its advisory lock
print("locked", flush=True)
sys.stdin.read()
"""


def _write(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)


def _vector_files(index: Path) -> list[str]:
    return sorted(p.name for p in index.glob("vectors-*"))


def _manifest_generation(index: Path) -> int:
    return json.loads((index / "manifest.json").read_text())["generation"]


# --- one writer at a time ---------------------------------------------------------------------------


def test_a_second_writer_is_refused_while_another_process_holds_the_lock(
        tmp_path: Path, new_index, embedder, rag_cli, index_snapshot, make_text: Callable[..., str]) -> None:
    corpus, index = tmp_path / "docs", new_index()
    _write(corpus, {"a.txt": make_text(1, 100)})
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    (corpus / "b.txt").write_text(make_text(2, 100))
    before = index_snapshot(index)

    hold = ([HOLD_PG_WRITER, index.dsn_env, index.schema] if isinstance(index, PostgresTarget)
            else [HOLD_LOCK, str(index / ".write.lock")])
    holder = subprocess.Popen([sys.executable, "-c", *hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match="being written by another ingest"):
            ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
        out = rag_cli.run(["ingest", corpus, *index_args(index)], extra_env=backend_env(index))
        assert out.returncode == 1 and "being written by another ingest" in out.stderr
        assert index_snapshot(index) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    report = ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    assert report.added == ["b.txt"]


# --- readers during an ingest -------------------------------------------------------------------


def test_readers_query_while_an_ingest_runs(tmp_path: Path, new_index, embedder, rag_cli, index_snapshot,
                                            make_text: Callable[..., str]) -> None:
    corpus, index = tmp_path / "docs", new_index()
    _write(corpus, {"old.txt": "The old lighthouse on Skerry Island was painted red in 1911.\n"})
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    # The CLI ingest loads its model (seconds), then embeds and commits this while the reader keeps querying.
    _write(corpus, {"new0.txt": "The new harbour crane lifts forty tonnes.\n\n" + make_text(100, 600),
                    "new1.txt": make_text(101, 600)})

    reader = open_index(index)
    retriever = Retriever(reader, embedder, RetrievalConfig())
    proc = rag_cli.popen(["ingest", corpus, *index_args(index), "--json"], extra_env=backend_env(index))
    latencies: list[float] = []
    generations: list[int] = []
    try:
        while proc.poll() is None:
            t = time.perf_counter()
            hits = retriever.search("When was the lighthouse painted red?", k=3, mode="dense").hits
            latencies.append(time.perf_counter() - t)
            generations.append(reader.generation)
            assert hits and hits[0].chunk.source == "old.txt"
            time.sleep(0.05)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        hits = retriever.search("How much can the harbour crane lift?", k=1, mode="dense").hits
        assert reader.generation == 2 and hits[0].chunk.source == "new0.txt"
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.close()
    assert len(latencies) >= 10, "the ingest finished before the reader could query it"
    assert generations[0] == 1
    assert max(latencies) < 5.0, f"a query waited {max(latencies):.1f} s on the writer"
    assert index_snapshot(index).consistent


# --- SIGKILL at random points: tests/ingest/test_ingest_kill_campaign.py (50 trials over every phase) ---------


# --- crashes at exact points of the commit (forked child, no cleanup, like kill -9) ----------------


def _crash_in_child(run: Callable[[], object]) -> int:
    """Run `run` in a forked child and return its exit code; the patched step calls os._exit(137) in it.

    The child never embeds (its texts' vectors are already cached or nothing is new), so no torch thread pool
    is used after the fork; only the tokenizer runs, with TOKENIZERS_PARALLELISM=false.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            run()
        except BaseException:
            code = 1
        os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def test_crash_at_each_step_of_the_commit(tmp_path: Path, embedder, monkeypatch, index_snapshot, corpus_hashes,
                                          no_model_loading, make_text: Callable[..., str]) -> None:
    corpus, index = tmp_path / "docs", tmp_path / "index"
    _write(corpus, {f"d{i}.txt": make_text(200 + i, 300) for i in range(4)})
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    reader = Collection(index)  # opened on generation 1, kept open through every crash below
    s0 = corpus_hashes(corpus)
    (corpus / "d0.txt").write_text("The tidal clock of Saint-Malo is wound every Sunday.\n\n" + make_text(300, 400))
    s1 = corpus_hashes(corpus)
    real_save, real_write, real_remove = FaissIndex.save, collection_mod.atomic_write, Collection.remove_stale_files

    # 1. An error after the next FAISS file is written but before the SQLite commit: rolled back; the vectors
    #    embedded so far stay cached.
    def save_then_fail(self, path):
        real_save(self, path)
        raise RuntimeError("injected failure before the SQLite commit")

    monkeypatch.setattr(FaissIndex, "save", save_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    snap = index_snapshot(index)
    assert snap.documents == s0 and snap.consistent and snap.generation == 1
    assert "vectors-00000002.faiss" in _vector_files(index)  # written, but nothing points at it

    # 2. Killed at the same point (no rollback, no cleanup at all).
    def save_then_die(self, path):
        real_save(self, path)
        os._exit(137)

    monkeypatch.setattr(FaissIndex, "save", save_then_die)
    assert _crash_in_child(lambda: ingest_paths([corpus], index, IngestConfig(), embedder=embedder)) == 137
    monkeypatch.setattr(FaissIndex, "save", real_save)
    snap = index_snapshot(index)
    assert snap.documents == s0 and snap.consistent and snap.generation == 1

    # 3. Killed after the SQLite commit, before manifest.json is written: the new generation is in force.
    def die(*args, **kwargs):
        os._exit(137)

    monkeypatch.setattr(collection_mod, "atomic_write", die)
    assert _crash_in_child(lambda: ingest_paths([corpus], index, IngestConfig(), embedder=embedder)) == 137
    monkeypatch.setattr(collection_mod, "atomic_write", real_write)
    snap = index_snapshot(index)
    assert snap.documents == s1 and snap.chunk_ids == snap.faiss_ids and snap.generation == 2
    assert snap.problems == ["manifest.json describes generation 1, the store generation 2 (an ingest was interrupted "
                             "after its commit; the next rag ingest (or rag stats) rewrites it)"]
    assert _manifest_generation(index) == 1  # stale until the next run (or rag stats)
    assert "vectors-00000001.faiss" in _vector_files(index)

    # 4. The next run (nothing changed, so no model) repairs manifest.json and removes the stale FAISS file.
    report = ingest_paths([corpus], index, IngestConfig())
    assert report.unchanged and report.chunks_embedded == 0
    assert _manifest_generation(index) == 2 and _vector_files(index) == ["vectors-00000002.faiss"]

    # 5. Killed after manifest.json, before old files are removed (a prune: nothing to embed).
    (corpus / "d1.txt").unlink()
    s2 = corpus_hashes(corpus)
    calls = []

    def remove_stale_then_die(self):
        calls.append(1)
        if len(calls) == 2:  # the first call is the cleanup at the start of the run
            os._exit(137)
        return real_remove(self)

    monkeypatch.setattr(Collection, "remove_stale_files", remove_stale_then_die)
    assert _crash_in_child(lambda: ingest_paths([corpus], index, IngestConfig(), prune=True)) == 137
    monkeypatch.setattr(Collection, "remove_stale_files", real_remove)
    snap = index_snapshot(index)
    assert snap.documents == s2 and snap.consistent and snap.generation == 3
    assert _vector_files(index) == ["vectors-00000002.faiss", "vectors-00000003.faiss"]
    ingest_paths([corpus], index, IngestConfig(), prune=True)
    assert _vector_files(index) == ["vectors-00000003.faiss"]

    # 6. The reader opened on generation 1 (whose file is long gone) follows to the newest generation.
    try:
        assert reader.generation == 1 and reader.refresh() and reader.generation == 3
        assert reader.consistency() == []
        hits = Retriever(reader, embedder, RetrievalConfig()).search("When is the tidal clock wound?", k=1,
                                                                     mode="dense").hits
        assert hits[0].chunk.source == "d0.txt"
    finally:
        reader.close()
    conn = sqlite3.connect(index / "store.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
