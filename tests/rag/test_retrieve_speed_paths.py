"""The fast keyword paths: the FTS5 OR query capped to terms under the posting budget, the unfiltered query without
joins, and tenant filters still applied inside the ranked query (never after the top-k cut)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.records import Chunk, Document, Section, sha256_hex
from ingest.store import ChunkFilter, Store
from rag import retrieve
from rag.retrieve import _Postings, fts_query, keyword_match


def _add(store: Store, source: str, tenant: str | None, texts: list[str]) -> list[int]:
    doc = Document(source=source, kind="text", doc_hash=sha256_hex(source + str(tenant)), title="",
                   sections=(Section("x", 0),))
    chunks = [Chunk(chunk_id=sha256_hex(f"{tenant}{source}{i}")[:24], source=source, text=t, start=0, end=len(t),
                    text_hash=sha256_hex(t), doc_hash=doc.doc_hash, ordinal=i) for i, t in enumerate(texts)]
    return store.add_document(doc, source, "/", chunks, tenant, ())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store.sqlite")
    with s.transaction():
        # "common" is in every chunk, "rare" in three, "scarce" in one; tenant b's chunks repeat "rare" more often,
        # so they outrank tenant a's on that word.
        _add(s, "a.txt", "a", [f"common filler {i} rare" if i < 2 else f"common filler {i}" for i in range(20)])
        _add(s, "b.txt", "b", ["common rare rare rare scarce"] + [f"common rare rare text {i}" for i in range(9)])
    yield s
    s.close()


def test_common_terms_are_left_out_of_the_or_query_on_a_large_index(store, monkeypatch):
    monkeypatch.setattr(retrieve, "POSTING_BUDGET", 8)
    # 30 chunks > budget; postings: common 30, rare 12, scarce 1, filler 20 (all tenant a's)
    assert keyword_match("common rare scarce", store, 30, 1, _Postings()) == '"scarce"'
    # every term over the budget: the rarest one is kept rather than none
    assert keyword_match("common rare", store, 30, 1, _Postings()) == '"rare"'
    # a small index is never cut
    assert keyword_match("common rare scarce", store, 8, 1, _Postings()) == '"common" OR "rare" OR "scarce"'
    monkeypatch.setattr(retrieve, "POSTING_BUDGET", 13)
    # rarest first while the postings add up to at most 13: scarce (1) + rare (12); question order kept
    assert keyword_match("rare common scarce", store, 30, 1, _Postings()) == '"rare" OR "scarce"'
    monkeypatch.setattr(retrieve, "POSTING_BUDGET", 4096)
    assert keyword_match("common rare scarce", store, 30, 1, _Postings()) == fts_query("common rare scarce")


def test_posting_counts_are_capped_and_cached_per_generation(store):
    assert store.keyword_postings('"common"', 5) == 5
    assert store.keyword_postings('"common"', 1000) == 30
    postings = _Postings()
    assert postings.get(store, 1, '"rare"') == 12
    with store.transaction():
        _add(store, "c.txt", "a", ["rare"] * 3)
    assert postings.get(store, 1, '"rare"') == 12  # same generation: cached
    assert postings.get(store, 2, '"rare"') == 15  # a new generation counts again


def test_unfiltered_keyword_search_matches_the_joined_query(store):
    every_kind = ChunkFilter(kinds=("text",))  # admits every chunk, but takes the joined, filtered path
    fast = store.keyword_search('"rare" OR "filler"', 50, ChunkFilter())
    joined = store.keyword_search('"rare" OR "filler"', 50, every_kind)
    assert fast == joined and len(fast) == 30
    assert [s for _, s in fast] == sorted((s for _, s in fast), reverse=True)


def test_tenant_filter_is_applied_inside_the_search_before_the_top_k_cut(store):
    tenant_a = {r[0] for r in store.db.execute(
        "SELECT c.id FROM chunks c JOIN documents d ON c.doc_id = d.id WHERE d.tenant = 'a'")}
    unfiltered = store.keyword_search('"rare"', 2, ChunkFilter())
    assert not set(dict(unfiltered)) & tenant_a  # tenant b's chunks rank first overall
    hits = store.keyword_search('"rare"', 2, ChunkFilter(tenants=("a",)))
    assert len(hits) == 2 and set(dict(hits)) <= tenant_a  # a full top-2 of tenant a, none of b's
    assert store.keyword_search('"scarce"', 5, ChunkFilter(tenants=("a",))) == []  # only b holds it: nothing leaks
    assert store.keyword_search('"rare"', 5, ChunkFilter(tenants=())) == []
