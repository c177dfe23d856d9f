"""Crash safety: one writer at a time, readers during an ingest, and kill -9 at any moment leaves a usable index."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import collection as collection_mod
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
        tmp_path: Path, embedder, rag_cli, index_snapshot, make_text: Callable[..., str]) -> None:
    corpus, index = tmp_path / "docs", tmp_path / "index"
    _write(corpus, {"a.txt": make_text(1, 100)})
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    (corpus / "b.txt").write_text(make_text(2, 100))
    before = index_snapshot(index)

    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(index / ".write.lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match="being written by another ingest"):
            ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
        out = rag_cli.run(["ingest", corpus, "--index", index])
        assert out.returncode == 1 and "being written by another ingest" in out.stderr
        assert index_snapshot(index) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    report = ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    assert report.added == ["b.txt"]


# --- readers during an ingest -------------------------------------------------------------------


def test_readers_query_while_an_ingest_runs(tmp_path: Path, embedder, rag_cli, index_snapshot,
                                            make_text: Callable[..., str]) -> None:
    corpus, index = tmp_path / "docs", tmp_path / "index"
    _write(corpus, {"old.txt": "The old lighthouse on Skerry Island was painted red in 1911.\n"})
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    # The CLI ingest loads its model (seconds), then embeds and commits this while the reader keeps querying.
    _write(corpus, {"new0.txt": "The new harbour crane lifts forty tonnes.\n\n" + make_text(100, 600),
                    "new1.txt": make_text(101, 600)})

    reader = Collection(index)
    retriever = Retriever(reader, embedder, RetrievalConfig())
    proc = rag_cli.popen(["ingest", corpus, "--index", index, "--json"])
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


# --- SIGKILL at random points -------------------------------------------------------------------


def _next_generation_file(index: Path, generation: int) -> bool:
    name = f"vectors-{generation + 1:08d}.faiss"
    return (index / name).exists() or (index / f"{name}.tmp").exists()


def _store_signature(index: Path) -> tuple[int, int]:
    """Changes whenever the writer commits to SQLite (WAL or main file)."""
    sig = 0, 0
    for name in ("store.sqlite-wal", "store.sqlite"):
        try:
            st = (index / name).stat()
            sig = (sig[0] + st.st_size, sig[1] + st.st_mtime_ns)
        except FileNotFoundError:
            pass
    return sig


def _kill_when(proc: subprocess.Popen, mode: str, delay: float, index: Path, generation: int) -> tuple[str, float]:
    """SIGKILL the ingest: after `delay` s ('random'), when it first commits to SQLite, i.e. has cached the embedded
    vectors ('vectors-cached'), or when it starts the next generation's FAISS file ('commit'); 'complete' lets it
    finish. Returns where the kill landed, as far as the index directory shows, and the seconds it ran."""
    start = time.monotonic()
    signature = _store_signature(index)
    while proc.poll() is None:
        elapsed = time.monotonic() - start
        if mode == "random" and elapsed >= delay:
            break
        if mode == "vectors-cached" and _store_signature(index) != signature:
            break
        if mode == "commit" and _next_generation_file(index, generation):
            break
        if elapsed > 120:
            break  # a stuck ingest is killed too; the checks that follow still apply
        time.sleep(0.01 if mode == "random" else 0.0005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        seconds = time.monotonic() - start
        if _next_generation_file(index, generation):
            where = "killed writing the next generation"
        elif _store_signature(index) != signature:
            where = "killed after caching vectors"
        else:
            where = "killed before any write"  # scanning, loading files or the model, chunking, embedding
    else:
        seconds = time.monotonic() - start
        where = f"completed, exit {proc.returncode}"
    proc.communicate()
    return where, seconds


def test_sigkill_at_random_points_leaves_a_consistent_index(
        tmp_path: Path, embedder, rag_cli, index_snapshot, corpus_hashes, make_text: Callable[..., str]) -> None:
    seed = int(os.environ.get("RAG_CRASH_SEED", time.time_ns() % 1_000_000))
    rnd = random.Random(seed)
    corpus, index = tmp_path / "docs", tmp_path / "index"
    _write(corpus, {f"doc{i}.txt": make_text(i, 150) for i in range(4)})
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    committed = corpus_hashes(corpus)
    assert index_snapshot(index).documents == committed

    # The first run is left to finish: its duration spreads the random kills over a whole run on this machine.
    plan = ["random"] * 7 + ["vectors-cached", "commit"]
    rnd.shuffle(plan)
    plan.insert(0, "complete")
    full_run = 10.0
    log: list[str] = []
    for trial, mode in enumerate(plan):
        # The change this run must apply all-or-nothing: a file rewritten, one deleted (--prune), one added.
        names = sorted(p.name for p in corpus.iterdir())
        (corpus / rnd.choice(names)).write_text(make_text(rnd.randrange(10**9), 500))
        (corpus / rnd.choice(names)).unlink()
        (corpus / f"new{trial}.txt").write_text(make_text(rnd.randrange(10**9), 500))
        target = corpus_hashes(corpus)
        generation = index_snapshot(index).generation

        proc = rag_cli.popen(["ingest", corpus, "--index", index, "--prune", "--json"])
        where, seconds = _kill_when(proc, mode, rnd.uniform(0.5, full_run), index, generation)
        if mode == "complete":
            full_run = max(seconds, 3.0)

        snap = index_snapshot(index)  # opens: a crash never leaves an unreadable index
        state = "new" if snap.documents == target else "old" if snap.documents == committed else "MIXED"
        if where.startswith("killed") and snap.generation > generation:
            where = "killed after the commit"  # while removing the previous generation's file
        log.append(f"trial {trial} {mode:>14} {seconds:5.2f} s: {where:<36} -> {state} documents, generation "
                   f"{snap.generation}, {len(snap.chunk_ids)} chunks, {_vector_files(index)}")
        context = f"seed {seed} (RAG_CRASH_SEED reruns it)\n" + "\n".join(log)
        assert snap.consistent, context + f"\n{snap.problems}"
        assert state != "MIXED", context
        if where.startswith("completed"):
            assert where.endswith("exit 0") and state == "new", context
        stats = rag_cli.run(["stats", "--index", index, "--json"])
        assert stats.returncode == 0 and json.loads(stats.stdout)["consistent"] is True, context + stats.stderr
        committed = snap.documents

    report = ingest_paths([corpus], index, IngestConfig(), embedder=embedder, prune=True)
    final = index_snapshot(index)
    context = f"seed {seed}\n" + "\n".join(log)
    assert not report.failed and final.consistent, context
    assert final.documents == corpus_hashes(corpus), context
    assert _vector_files(index) == [f"vectors-{final.generation:08d}.faiss"], context  # no stale or .tmp files
    assert _manifest_generation(index) == final.generation
    print("\n" + context)


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
    assert snap.documents == s1 and snap.consistent and snap.generation == 2
    assert _manifest_generation(index) == 1  # stale until the next run
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
