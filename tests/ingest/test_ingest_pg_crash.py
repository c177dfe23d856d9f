"""Crash safety of the postgres backend: an error or a kill -9 at each step of an ingest leaves the previous
generation (one transaction per run), the vectors embedded before the crash stay cached, and the next ingest
completes. The embedded backend's own crash points are in test_ingest_crash.py.

Real processes over a real PostgreSQL (the session's pgserver); the fast deterministic HashEmbedder embeds (a unit
seam: the subject here is the transaction, not the model).

50 random SIGKILLs, as many as the embedded backend's campaign (test_ingest_kill_campaign.py), must land on >= 4
different steps; `test_crash_at_each_step_of_a_postgres_commit` also crashes at each kind of step deterministically.
Measured on the 2-core machine: 50 kills take about 59 s (slow-marked: the full run's budget holds it).
RAG_PG_KILLS=N changes the count for a run by hand.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from index_backends import pg_target

from ingest.backend import open_index
from ingest.config import IngestConfig
from ingest.pg import writer as writer_mod
from ingest.pg.writer import PgChanges, PgWriter
from ingest.pipeline import ingest_paths
from rag import api
from rag.config import RetrievalConfig
from rag.retrieve import Retriever

pytestmark = [pytest.mark.slow]
TESTS = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("RAG_PG_KILLS", "50"))  # see the module docstring


def _write(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)


def _crash_in_child(run: Callable[[], object]) -> int:
    """Run `run` in a forked child and return its exit code; a patched step calls os._exit(137) there (no
    rollback, no goodbye to the server: PostgreSQL sees the connection drop, as after kill -9)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            run()
        except BaseException:
            code = 1
        os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def test_crash_at_each_step_of_a_postgres_commit(postgres, tmp_path: Path, hash_embedder, monkeypatch,
                                                 index_snapshot, corpus_hashes, make_text: Callable[..., str]) -> None:
    corpus, index = tmp_path / "docs", pg_target("crash")
    _write(corpus, {f"d{i}.txt": make_text(200 + i, 300) for i in range(4)})
    ingest_paths([corpus], index, IngestConfig(), embedder=hash_embedder)
    reader = open_index(index)  # opened on generation 1, kept open through every crash below
    s0 = corpus_hashes(corpus)
    before = index_snapshot(index)
    (corpus / "d0.txt").write_text("The tidal clock of Saint-Malo is wound every Sunday.\n\n" + make_text(300, 400))
    s1 = corpus_hashes(corpus)
    run = lambda: ingest_paths([corpus], index, IngestConfig(), embedder=hash_embedder)  # noqa: E731
    real_manifest, real_put, real_close = writer_mod.next_manifest, PgWriter.put_vectors, PgWriter.close

    # 1. An error inside the transaction, after the documents and chunks are written: rolled back; the vectors
    #    embedded so far stay cached.
    def manifest_then_fail(*args, **kwargs):
        raise RuntimeError("injected failure before the commit")

    monkeypatch.setattr(writer_mod, "next_manifest", manifest_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        run()
    snap = index_snapshot(index)
    assert snap.documents == s0 and snap.consistent and snap.generation == 1
    assert snap.chunk_ids == before.chunk_ids and snap.n_vectors > before.n_vectors  # d0's new texts are cached

    # 2. Killed at the same point: PostgreSQL rolls the transaction back when the connection drops.
    monkeypatch.setattr(writer_mod, "next_manifest", lambda *a, **k: os._exit(137))
    assert _crash_in_child(run) == 137
    monkeypatch.setattr(writer_mod, "next_manifest", real_manifest)
    snap = index_snapshot(index)
    assert snap.documents == s0 and snap.consistent and snap.generation == 1 and snap.chunk_ids == before.chunk_ids

    # 3. Killed after the first documents of a run were deleted and written (mid-transaction).
    real_add = PgChanges.add_document

    def add_then_die(self, *args, **kwargs):
        real_add(self, *args, **kwargs)
        os._exit(137)

    monkeypatch.setattr(PgChanges, "add_document", add_then_die)
    assert _crash_in_child(run) == 137
    monkeypatch.setattr(PgChanges, "add_document", real_add)
    assert index_snapshot(index).documents == s0

    # 4. Killed after the commit (while the writer closes): the new generation is in force, whole.
    monkeypatch.setattr(PgWriter, "close", lambda self: os._exit(137))
    assert _crash_in_child(run) == 137
    monkeypatch.setattr(PgWriter, "close", real_close)
    snap = index_snapshot(index)
    assert snap.documents == s1 and snap.consistent and snap.generation == 2

    # 5. Killed after a batch of vectors was cached, before anything else: the next run embeds nothing again.
    (corpus / "d1.txt").write_text("The harbour crane lifts forty tonnes.\n\n" + make_text(301, 300))
    (corpus / "d2.txt").unlink()
    s2 = corpus_hashes(corpus)

    def put_then_die(self, hashes, vectors):
        real_put(self, hashes, vectors)
        os._exit(137)

    monkeypatch.setattr(PgWriter, "put_vectors", put_then_die)
    assert _crash_in_child(lambda: ingest_paths([corpus], index, IngestConfig(), embedder=hash_embedder,
                                                prune=True)) == 137
    monkeypatch.setattr(PgWriter, "put_vectors", real_put)
    snap = index_snapshot(index)
    assert snap.documents == s1 and snap.consistent and snap.generation == 2
    hash_embedder.calls.clear()
    report = ingest_paths([corpus], index, IngestConfig(), embedder=hash_embedder, prune=True)
    assert report.updated == ["d1.txt"] and report.removed == ["d2.txt"] and report.chunks_embedded == 0
    assert hash_embedder.calls == []
    snap = index_snapshot(index)
    assert snap.documents == s2 and snap.consistent and snap.generation == 3

    # 6. The reader opened on generation 1 reads the newest generation at its next query.
    try:
        hits = Retriever(reader, hash_embedder, RetrievalConfig()).search("tidal clock Saint-Malo Sunday", k=1,
                                                                          mode="keyword").hits
        assert reader.generation == 3 and hits[0].chunk.source == "d0.txt"
        assert reader.consistency() == []
    finally:
        reader.close()


CHILD = r'''
import os, sys, time
sys.path[:0] = [{ingest_tests!r}, {tests!r}]
from pathlib import Path
from conftest import HashEmbedder
from ingest.backend import PostgresTarget
from ingest.config import IngestConfig
from ingest.pg import writer as writer_mod
from ingest.pipeline import ingest_paths

STEP = int(os.environ["KILL_AT"])
seen = [0]

def step(what):
    os.write(1, f"{{seen[0]}} {{what}}\n".encode())
    if seen[0] == STEP:
        os.write(1, b"PAUSED\n")
        time.sleep(3600)
    seen[0] += 1

def around(owner, name, what):
    real = getattr(owner, name)
    def wrapper(*args, **kwargs):
        step(what + " (before)")
        out = real(*args, **kwargs)
        step(what + " (after)")
        return out
    setattr(owner, name, wrapper)

around(writer_mod.PgWriter, "put_vectors", "vectors cached")
around(writer_mod.PgChanges, "delete_document", "document deleted")
around(writer_mod.PgChanges, "add_document", "document added")
around(writer_mod, "next_manifest", "manifest")
around(writer_mod.PgWriter, "close", "closed")
target = PostgresTarget(dsn_env={dsn_env!r}, schema={schema!r})
ingest_paths([Path(sys.argv[1])], target, IngestConfig(), embedder=HashEmbedder(), prune=True)
os.write(1, b"DONE\n")
'''


def test_kill_9_at_random_steps_of_postgres_ingests(postgres, tmp_path: Path, hash_embedder, rag_cli,
                                                    corpus_hashes, make_text: Callable[..., str]) -> None:
    """KILLS (50) SIGKILLs of real ingest processes, each paused at a step drawn from the run (caching vectors, deleting
    and adding documents, the manifest, the close after the commit); each leaves all old or all new documents, an
    index rag stats calls consistent, and the next ingest completes."""
    rnd = random.Random(int(os.environ.get("RAG_CRASH_SEED", "12")))
    corpus, index = tmp_path / "docs", pg_target("kills")
    _write(corpus, {f"f{i}.txt": make_text(400 + i, 250) for i in range(5)})
    ingest_paths([corpus], index, IngestConfig(), embedder=hash_embedder)
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(TESTS), ingest_tests=str(TESTS / "ingest"), dsn_env=index.dsn_env,
                                   schema=index.schema))
    landed: list[str] = []
    for trial in range(KILLS):
        old = corpus_hashes(corpus)
        victim = corpus / f"f{trial % 5}.txt"
        victim.write_text(f"Trial {trial} changed this file.\n\n" + make_text(500 + trial, 250))
        (corpus / f"new{trial}.txt").write_text(make_text(600 + trial, 80))
        if trial % 3 == 2:
            (corpus / f"new{trial - 1}.txt").unlink(missing_ok=True)
        new = corpus_hashes(corpus)
        at = rnd.randrange(0, 12)  # past the last step: killed after it finished
        proc = subprocess.Popen([sys.executable, str(script), str(corpus)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "KILL_AT": str(at)}, cwd=tmp_path)
        last = "started"
        for line in proc.stdout:
            if line.strip() in ("PAUSED", "DONE"):
                break
            last = line.strip()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        landed.append(last)
        stats = api.stats(index)
        docs = {d.source: d.doc_hash for d in _documents(index)}
        context = f"trial {trial}, killed at {last!r}"
        assert stats.consistent, (context, stats.problems)
        assert docs in (old, new), context
        report = ingest_paths([corpus], index, IngestConfig(), embedder=hash_embedder, prune=True, lock_timeout=30)
        assert not report.failed and {d.source: d.doc_hash for d in _documents(index)} == new, context
    out = rag_cli.run(["stats", "--json"], extra_env={"RAG_INDEX__BACKEND": "postgres",
                                                      "RAG_INDEX__PG_SCHEMA": index.schema})
    assert out.returncode == 0, out.stdout + out.stderr
    assert len({step.split(" ", 1)[1] for step in landed if " " in step}) >= 4, landed  # spread over the steps


def _documents(index):  # noqa: ANN001, ANN202
    reader = open_index(index)
    try:
        with reader.snapshot() as view:
            return view.documents()
    finally:
        reader.close()
