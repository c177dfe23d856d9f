"""A shared Collection follows committed generations forward only, whatever its threads' read snapshots see."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ingest.collection import Collection
from ingest.config import IngestConfig
from ingest.index import FaissIndex
from ingest.pipeline import ingest_paths


def test_a_thread_on_an_older_snapshot_never_moves_the_collection_back(tmp_path: Path, hash_embedder,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha beta gamma")
    index = tmp_path / "index"
    ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)  # generation 1

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
