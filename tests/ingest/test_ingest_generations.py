"""A shared Collection follows committed generations forward only, whatever its threads' read snapshots see."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ingest.collection import Collection
from ingest.config import IngestConfig
from ingest.index import FaissIndex
from ingest.pipeline import ingest_paths


def _index(root: Path, embedder, files: dict[str, str]) -> tuple[Path, Path]:  # noqa: ANN001 - a test embedder
    docs = root / "docs"
    docs.mkdir(parents=True)
    for name, text in files.items():
        (docs / name).write_text(text)
    index = root / "index"
    ingest_paths([docs], index, IngestConfig(), embedder=embedder)  # generation 1
    return docs, index


def test_a_thread_on_an_older_snapshot_never_moves_the_collection_back(tmp_path: Path, hash_embedder,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    docs, index = _index(tmp_path, hash_embedder, {"a.txt": "alpha beta gamma"})

    loaded: list[str] = []
    real_load = FaissIndex.load.__func__

    def counting_load(cls, path: Path, *args, **kwargs):  # noqa: ANN001, ANN202 - FaissIndex.load's own signature
        if kwargs.get("mmap"):  # a reader's load (the writer loads its previous generation without mapping it)
            loaded.append(Path(path).name)
        return real_load(cls, path, *args, **kwargs)

    monkeypatch.setattr(FaissIndex, "load", classmethod(counting_load))
    reader = Collection(index)
    started, go_on = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def old_reader() -> None:
        with reader.snapshot() as view:  # its SQLite snapshot stays at generation 1
            seen["snapshot"] = view.generation
            started.set()
            assert go_on.wait(30)
            seen["refreshed"] = reader.refresh()
            seen["after"] = reader.generation

    thread = threading.Thread(target=old_reader)
    try:
        thread.start()
        assert started.wait(30)
        (docs / "b.txt").write_text("delta epsilon")
        ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)  # generation 2, removes file 1
        with reader.snapshot() as view:
            assert view.generation == 2 and view.manifest is not None and view.manifest.generation == 2
            newest = view.vectors
        go_on.set()
        thread.join(30)
        assert seen == {"snapshot": 1, "refreshed": False, "after": 2}
        assert reader.generation == 2 and reader.vectors is newest  # not read again
        with reader.snapshot() as view:
            assert view.generation == 2 and view.vectors is newest
        assert loaded == ["vectors-00000001.faiss", "vectors-00000002.faiss"]
    finally:
        go_on.set()
        reader.close()


def test_a_snapshot_begun_before_the_collection_moved_on_is_begun_again(tmp_path: Path, hash_embedder,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Its rows and its FAISS index must be of one generation: not the old store's rows with the new vectors."""
    docs, index = _index(tmp_path, hash_embedder, {"a.txt": "alpha beta gamma"})
    reader = Collection(index)
    real_follow = Collection._follow
    paused, go_on = threading.Event(), threading.Event()

    def follow_then_pause(self: Collection, gen: int) -> bool:
        moved = real_follow(self, gen)
        if threading.current_thread().name == "old" and not paused.is_set():
            paused.set()  # its read snapshot has begun, at generation 1
            assert go_on.wait(30)
        return moved

    monkeypatch.setattr(Collection, "_follow", follow_then_pause)
    seen: dict[str, object] = {}

    def old_reader() -> None:
        with reader.snapshot() as view:
            seen.update(generation=view.generation, rows=view.store.generation,
                        sources=sorted(d.source for d in view.documents()))

    thread = threading.Thread(target=old_reader, name="old")
    try:
        thread.start()
        assert paused.wait(30)
        (docs / "b.txt").write_text("delta epsilon")
        ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)  # generation 2
        assert reader.refresh() and reader.generation == 2  # another thread moves the collection on
        go_on.set()
        thread.join(30)
        assert seen == {"generation": 2, "rows": 2, "sources": ["a.txt", "b.txt"]}
    finally:
        go_on.set()
        reader.close()


def _index_and_replacement(root: Path, embedder) -> tuple[Path, Path, Collection]:  # noqa: ANN001 - a test embedder
    """An index at generation 2 (a.txt, b.txt), another index at generation 1 (c.txt), and a Collection reading the
    first."""
    docs, index = _index(root, embedder, {"a.txt": "alpha beta gamma"})
    (docs / "b.txt").write_text("delta epsilon")
    ingest_paths([docs], index, IngestConfig(), embedder=embedder)  # generation 2
    reader = Collection(index)
    _, other = _index(root / "other", embedder, {"c.txt": "zeta eta theta"})  # another index, generation 1
    return index, other, reader


def test_a_replaced_index_directory_is_followed_even_to_a_lower_generation(tmp_path: Path, hash_embedder) -> None:
    index, other, reader = _index_and_replacement(tmp_path, hash_embedder)
    try:
        assert reader.generation == 2
        index.rename(tmp_path / "old-index")
        other.rename(index)
        seen: dict[str, object] = {}

        def new_thread() -> None:  # connects after the swap, so it sees the new store
            seen["moved"] = reader.refresh()
            with reader.snapshot() as view:
                seen.update(generation=view.generation, sources=sorted(d.source for d in view.documents()),
                            vectors=view.vectors.ntotal if view.vectors is not None else None)

        thread = threading.Thread(target=new_thread)
        thread.start()
        thread.join(30)
        assert seen == {"moved": True, "generation": 1, "sources": ["c.txt"], "vectors": 1}
    finally:
        reader.close()


def test_a_thread_connected_before_the_index_was_replaced_reads_the_new_one(tmp_path: Path, hash_embedder) -> None:
    """A thread's connection opened before the index folder was swapped reads the new store afterwards (it kept
    reading the old file, and old and new connections moved the collection back and forth)."""
    index, other, reader = _index_and_replacement(tmp_path, hash_embedder)
    try:
        with reader.snapshot() as view:  # this thread's connection, to the first store
            assert view.generation == 2 and sorted(d.source for d in view.documents()) == ["a.txt", "b.txt"]
        index.rename(tmp_path / "old-index")  # the old file stays readable: only its path moved
        other.rename(index)
        assert reader.refresh()
        with reader.snapshot() as view:
            assert view.generation == 1 and sorted(d.source for d in view.documents()) == ["c.txt"]
            assert view.vectors is not None and view.vectors.ntotal == 1
        assert not reader.refresh()  # it stays on the new store
        assert reader.generation == 1
        assert len(reader._stores) == 2  # opened again once, not at every read
        with reader.snapshot() as view:
            assert view.generation == 1
        assert len(reader._stores) == 2
    finally:
        reader.close()
