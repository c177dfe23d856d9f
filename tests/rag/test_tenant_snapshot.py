"""Critical (issue 9): a writer committing between retrieval's tenant filter and its text fetch cannot hand a
tenant-a reader any text of tenant b.

Deterministic: `Store.chunk_ids_where` (the tenant filter) is wrapped so that, once it has answered, another
thread deletes tenant a's document and ingests tenant b's, and the reader waits for that commit before going on
to search and fetch. On the old main chunk ids were reused (no AUTOINCREMENT) and the fetch ran outside the
filter's snapshot, so the freed ids of a's chunks named b's chunks by the time their text was read.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from ingest.store import Store
from rag.api import open_pipeline
from rag.config import Config

A_SECRET, B_SECRET = "ALPHA-7731", "BRAVO-4420"
QUESTION = "What is the falcon code word in the ledger?"
DOCS = {
    ("a", "a-keep.md"): f"# Weather\n\nThe weather station of tenant a logs rain each hour. Code {A_SECRET}.\n",
    ("a", "a-falcon.md"): f"# Falcon ledger\n\nThe falcon code word in the ledger is {A_SECRET}. The falcon "
                          f"ledger is kept by tenant a.\n",
    ("b", "b-falcon.md"): f"# Falcon ledger\n\nThe falcon code word in the ledger is {B_SECRET}. The falcon "
                          f"ledger is kept by tenant b.\n",
}


def _write(folder: Path, tenant: str, name: str) -> Path:
    path = folder / tenant / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DOCS[(tenant, name)], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, embedder) -> Path:
    """Tenant a only; a-falcon.md is ingested last, so its chunks hold the highest ids (the ones a reused id takes)."""
    tmp = tmp_path_factory.mktemp("snapshot")
    index = tmp / "index"
    cfg = Config(index_dir=index).ingest
    for name in ("a-keep.md", "a-falcon.md"):
        rep = ingest_paths([_write(tmp / "docs", "a", name)], index, cfg, tenant="a", embedder=embedder)
        assert rep.added == [name], rep
    return index


@pytest.fixture()
def index(base_index: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_index, tmp_path / "index"))


def _delete_a(store: Store) -> None:
    try:
        store.delete_document("a-falcon.md", "a")
    except TypeError:  # the old main's signature: documents were named by source alone
        store.delete_document("a-falcon.md")  # type: ignore[call-arg]


def _writer(index: Path, docs: Path, embedder, one_commit: bool, monkeypatch) -> None:  # noqa: ANN001
    """Delete a's a-falcon.md and add b's b-falcon.md: in one commit, or in two back to back."""
    cfg = Config(index_dir=index).ingest
    b_file = _write(docs, "b", "b-falcon.md")
    if one_commit:  # the delete runs inside the ingest's own transaction, just before b's rows are inserted
        original = Store.add_document
        done = threading.Event()

        def add_document(self: Store, *args, **kw):  # noqa: ANN002, ANN003, ANN202
            if threading.current_thread().name == "writer" and not done.is_set():
                done.set()
                _delete_a(self)
            return original(self, *args, **kw)

        monkeypatch.setattr(Store, "add_document", add_document)
        rep = ingest_paths([b_file], index, cfg, tenant="b", embedder=embedder)
        assert done.is_set() and rep.added == ["b-falcon.md"], rep
    else:
        assert ingest_paths([], index, cfg, tenant="a", remove=["a-falcon.md"], embedder=embedder).removed
        assert ingest_paths([b_file], index, cfg, tenant="b", embedder=embedder).added == ["b-falcon.md"]


@pytest.fixture()
def write_between_filter_and_fetch(monkeypatch, embedder, tmp_path) -> Iterator[dict]:  # noqa: ANN001
    """Arms the wrapper: `state["index"]`, `state["one_commit"]` set by the test; `state["ran"]` after."""
    state: dict = {"ran": 0, "errors": []}
    original = Store.chunk_ids_where

    def chunk_ids_where(self: Store, flt):  # noqa: ANN001, ANN202
        ids = original(self, flt)
        if state.get("index") and not state["ran"] and threading.current_thread().name != "writer":
            state["ran"] += 1

            def write() -> None:
                try:
                    _writer(state["index"], tmp_path / "docs", embedder, state["one_commit"], monkeypatch)
                except BaseException as e:  # reported by the test
                    state["errors"].append(e)

            t = threading.Thread(target=write, name="writer")
            t.start()
            t.join(180)
            assert not t.is_alive(), "the writer did not commit within 180 s while a reader held its snapshot"
        return ids

    monkeypatch.setattr(Store, "chunk_ids_where", chunk_ids_where)
    yield state


@pytest.mark.slow
@pytest.mark.parametrize("one_commit", [True, False], ids=["one-commit", "two-commits"])
@pytest.mark.parametrize("mode", ["dense", "hybrid", "keyword"])
def test_reader_of_a_gets_no_b_chunk_when_a_writer_commits_mid_retrieval(index, embedder, write_between_filter_and_fetch,
                                                                       mode, one_commit) -> None:
    config = Config(index_dir=index).with_overrides(**{"answer.llm": "extractive"})
    with open_pipeline(config=config, embedder=embedder) as r:
        before = r.retrieve(QUESTION, k=10, mode=mode, tenants=("a",))
        assert any(A_SECRET in h.chunk.text for h in before)  # the probe finds a's falcon ledger to begin with
        state = write_between_filter_and_fetch
        state.update(index=index, one_commit=one_commit)
        hits = r.retrieve(QUESTION, k=10, mode=mode, tenants=("a",))
        assert state["ran"] == 1 and not state["errors"], state["errors"]
        for h in hits:
            assert h.chunk.tenant == "a" and h.chunk.source.startswith("a-"), (h.chunk.source, h.chunk.tenant)
            assert B_SECRET not in h.chunk.text and A_SECRET in h.chunk.text, h.chunk.text
        # The write has landed: b's reader sees b's ledger, a's reader never does
        b_hits = r.retrieve(QUESTION, k=10, mode=mode, tenants=("b",))
        assert any(B_SECRET in h.chunk.text for h in b_hits)
        after = r.retrieve(QUESTION, k=10, mode=mode, tenants=("a",))
        assert all(B_SECRET not in h.chunk.text and h.chunk.tenant == "a" for h in after)


@pytest.mark.slow
@pytest.mark.parametrize("one_commit", [True, False], ids=["one-commit", "two-commits"])
def test_answers_carry_no_b_text_either(index, embedder, write_between_filter_and_fetch, one_commit) -> None:
    config = Config(index_dir=index).with_overrides(**{"answer.llm": "extractive"})
    with open_pipeline(config=config, embedder=embedder) as r:
        write_between_filter_and_fetch.update(index=index, one_commit=one_commit)
        answer = r.ask(QUESTION, tenants=("a",))
        assert write_between_filter_and_fetch["ran"] == 1 and not write_between_filter_and_fetch["errors"]
        assert B_SECRET not in answer.text and "tenant b" not in answer.text
        assert all(h.chunk.tenant == "a" and B_SECRET not in h.chunk.text for h in answer.contexts)
        assert all(c.source.startswith("a-") and B_SECRET not in c.quote for c in answer.citations)
