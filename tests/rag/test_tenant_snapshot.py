"""Critical (issue 9): a writer committing between retrieval's tenant filter and its text fetch cannot hand a
tenant-a reader any text of tenant b. On both index backends (issue 12).

Deterministic: the tenant filter (embedded: `Store.chunk_ids_where`; postgres: `PgView.admitted`, the count that
sizes the filtered vector search) is wrapped so that, once it has answered, another thread deletes tenant a's
document and ingests tenant b's, and the reader waits for that commit before going on to search and fetch. On the
old main chunk ids were reused (no AUTOINCREMENT) and the fetch ran outside the filter's snapshot, so the freed ids
of a's chunks named b's chunks by the time their text was read. PostgreSQL never reuses identity values, reads
in one REPEATABLE READ snapshot, and its row-level security hides b's rows from a's reader as well.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from index_backends import pg_target

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


def _build(index, docs: Path, embedder):  # noqa: ANN001, ANN202
    """Tenant a only; a-falcon.md is ingested last, so its chunks hold the highest ids (the ones a reused id takes)."""
    cfg = Config().ingest
    for name in ("a-keep.md", "a-falcon.md"):
        rep = ingest_paths([_write(docs, "a", name)], index, cfg, tenant="a", embedder=embedder)
        assert rep.added == [name], rep
    return index


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, embedder) -> Path:
    tmp = tmp_path_factory.mktemp("snapshot")
    return _build(tmp / "index", tmp / "docs", embedder)


@pytest.fixture()
def index(backend: str, tmp_path: Path, embedder, request: pytest.FixtureRequest):  # noqa: ANN001, ANN201
    """A copy of the embedded base index, or the same two documents in a fresh PostgreSQL schema."""
    if backend == "embedded":
        return Path(shutil.copytree(request.getfixturevalue("base_index"), tmp_path / "index"))
    return _build(pg_target("snapshot"), tmp_path / "base-docs", embedder)


def _hooks(index) -> tuple[type, str, type]:  # noqa: ANN001
    """(class, method) of the tenant filter a reader runs first, and the class whose add_document a run calls."""
    if isinstance(index, Path):
        return Store, "chunk_ids_where", Store
    from ingest.pg.index import PgView
    from ingest.pg.writer import PgChanges

    return PgView, "admitted", PgChanges


def _delete_a(store: Store) -> None:
    try:
        store.delete_document("a-falcon.md", "a")
    except TypeError:  # the old main's signature: documents were named by source alone
        store.delete_document("a-falcon.md")  # type: ignore[call-arg]


def _writer(index, docs: Path, embedder, one_commit: bool, monkeypatch) -> None:  # noqa: ANN001
    """Delete a's a-falcon.md and add b's b-falcon.md: in one commit, or in two back to back."""
    cfg = Config().ingest
    b_file = _write(docs, "b", "b-falcon.md")
    if one_commit:  # the delete runs inside the ingest's own transaction, just before b's rows are inserted
        changes = _hooks(index)[2]
        original = changes.add_document
        done = threading.Event()

        def add_document(self, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            if threading.current_thread().name == "writer" and not done.is_set():
                done.set()
                _delete_a(self)
            return original(self, *args, **kw)

        monkeypatch.setattr(changes, "add_document", add_document)
        rep = ingest_paths([b_file], index, cfg, tenant="b", embedder=embedder)
        assert done.is_set() and rep.added == ["b-falcon.md"], rep
    else:
        assert ingest_paths([], index, cfg, tenant="a", remove=["a-falcon.md"], embedder=embedder).removed
        assert ingest_paths([b_file], index, cfg, tenant="b", embedder=embedder).added == ["b-falcon.md"]


@pytest.fixture()
def write_between_filter_and_fetch(monkeypatch, embedder, tmp_path, index) -> Iterator[dict]:  # noqa: ANN001
    """Arms the wrapper: `state["index"]`, `state["one_commit"]` set by the test; `state["ran"]` after."""
    state: dict = {"ran": 0, "errors": []}
    owner, name, _ = _hooks(index)
    original = getattr(owner, name)

    def tenant_filter(self, flt):  # noqa: ANN001, ANN202
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

    monkeypatch.setattr(owner, name, tenant_filter)
    yield state


@pytest.mark.slow
@pytest.mark.parametrize("one_commit", [True, False], ids=["one-commit", "two-commits"])
@pytest.mark.parametrize("mode", ["dense", "hybrid", "keyword"])
def test_reader_of_a_gets_no_b_chunk_when_a_writer_commits_mid_retrieval(index, embedder, write_between_filter_and_fetch,
                                                                       mode, one_commit) -> None:
    config = Config().with_overrides(**{"answer.llm": "extractive"})
    with open_pipeline(index, config, embedder=embedder) as r:
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
    config = Config().with_overrides(**{"answer.llm": "extractive"})
    with open_pipeline(index, config, embedder=embedder) as r:
        write_between_filter_and_fetch.update(index=index, one_commit=one_commit)
        answer = r.ask(QUESTION, tenants=("a",))
        assert write_between_filter_and_fetch["ran"] == 1 and not write_between_filter_and_fetch["errors"]
        assert B_SECRET not in answer.text and "tenant b" not in answer.text
        assert all(h.chunk.tenant == "a" and B_SECRET not in h.chunk.text for h in answer.contexts)
        assert all(c.source.startswith("a-") and B_SECRET not in c.quote for c in answer.citations)
