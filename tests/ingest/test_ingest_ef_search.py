"""`[index] ef_search`, the breadth of HNSW searches, reaches both backends: what FAISS is given (and the recall it
buys) on an HNSW index built by the product's ingest, and the `hnsw.ef_search` a pgvector search sets in its
transaction; bad values are refused with the key and the range."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from index_backends import pg_target

from ingest.backend import open_index
from ingest.config import ConfigError, IngestConfig
from ingest.pipeline import ingest_paths
from ingest.store import ChunkFilter
from rag import factory
from rag.config import Config, load_config, parse_config

DIM = 384  # HashEmbedder's: random unit vectors, a hard case for a narrow HNSW search


def _corpus(tmp_path: Path, make_text: Callable[..., str]) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "many.txt").write_text(make_text(7, 3000))  # some hundreds of 16-piece chunks
    return folder


def _recall(view, queries: np.ndarray, truth: list[set[int]], k: int, flt: ChunkFilter) -> float:  # noqa: ANN001
    found = [{cid for cid, _ in view.dense_search(q[None, :], k, flt)} for q in queries]
    return float(np.mean([len(f & t) / k for f, t in zip(found, truth, strict=True)]))


def test_faiss_hnsw_searches_with_the_configured_breadth(tmp_path: Path, make_text, hash_embedder) -> None:  # noqa: ANN001
    index = tmp_path / "index"
    ingest_paths([_corpus(tmp_path, make_text)], index,
                 IngestConfig(index_type="hnsw", chunk_size=16, chunk_overlap=0), embedder=hash_embedder)
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((40, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = 10
    recall: dict[int, tuple[float, float]] = {}
    for ef in (1, 200):
        coll = factory.open_collection(Config(index_dir=index).with_overrides(**{"index.ef_search": ef}))
        try:
            with coll.snapshot() as view:
                ids = view.chunk_ids_where(ChunkFilter())
                assert len(ids) >= 300, len(ids)
                vectors = view.vectors_for_chunks(ids.tolist(), DIM)
                order = np.argsort(-(queries @ vectors.T), axis=1)
                truth = [set(ids[row[:k]].tolist()) for row in order]
                allowed = ids[: len(ids) * 9 // 10]  # a filter: most chunks, through the selector path
                kept = ChunkFilter(sources=("many.txt",))
                recall[ef] = (_recall(view, queries, truth, k, ChunkFilter()), _recall(view, queries, truth, k, kept))
            faiss_index = coll.vectors
            # What FAISS is given: the configured breadth, never fewer candidates than the hits asked for.
            assert faiss_index.search_parameters(k).efSearch == max(ef, k)
            assert faiss_index.search_parameters(k, allowed).efSearch == max(ef, k)
            assert faiss_index.search_parameters(300).efSearch == 300
        finally:
            coll.close()
    (narrow, narrow_filtered), (wide, wide_filtered) = recall[1], recall[200]
    assert wide >= 0.95 and wide_filtered >= 0.95, recall
    assert narrow <= wide - 0.1 and narrow_filtered <= wide_filtered - 0.1, recall


def test_ef_search_is_validated_with_the_key_and_the_range(monkeypatch) -> None:  # noqa: ANN001
    assert Config().index.ef_search == 64
    assert parse_config({"index": {"ef_search": 1000}}).index.ef_search == 1000
    for bad in (0, 1001, -5, 2.5, "wide", True):
        with pytest.raises(ConfigError, match=r"index\.ef_search = .*: must be an integer from 1 to 1000"):
            parse_config({"index": {"ef_search": bad}}, "config.toml")
    monkeypatch.setenv("RAG_INDEX__EF_SEARCH", "200")
    assert load_config(None).index.ef_search == 200
    monkeypatch.setenv("RAG_INDEX__EF_SEARCH", "0")
    with pytest.raises(ConfigError, match=r"RAG_\* environment variables: index\.ef_search = 0: .* 1 to 1000"):
        load_config(None)
    with pytest.raises(ConfigError, match=r"index\.ef_search = 5000"):
        open_index(Path("unused"), ef_search=5000)  # the ingest side refuses it too, before opening anything


def _shown_ef(index, n: int) -> int:  # noqa: ANN001
    """The hnsw.ef_search in force in the transaction of an unfiltered search for n hits."""
    q = np.ones((1, DIM), dtype=np.float32) / np.sqrt(DIM)
    with index.snapshot() as view:
        assert view.dense_search(q, n, ChunkFilter())
        return int(view.conn.execute("SHOW hnsw.ef_search").fetchone()[0])


@pytest.mark.slow
def test_pgvector_search_sets_the_configured_breadth(postgres, tmp_path: Path, text_corpus, hash_embedder) -> None:  # noqa: ANN001
    target = pg_target("ef_search")
    docs = text_corpus({"a.md": "# Alpha\n\nThe walrus counts clams.\n", "b.md": "# Beta\n\nSeabirds nest at dawn.\n"})
    ingest_paths([docs], target, IngestConfig(), embedder=hash_embedder)
    cases = {  # (ef_search, hits wanted): the ef_search the search sets
        (64, 10): 64,  # the default (pgvector's own is 40)
        (1, 10): 10,  # never below the hits wanted
        (200, 10): 200,
        (1, 50): 50,
        (5, 4000): 1000,  # capped at pgvector's largest
    }
    for (ef, n), expected in cases.items():
        index = open_index(target, ef_search=ef)
        try:
            assert _shown_ef(index, n) == expected, (ef, n)
        finally:
            index.close()
    config = Config().with_overrides(**{"index.backend": "postgres", "index.dsn_env": target.dsn_env,
                                        "index.pg_schema": target.schema, "index.ef_search": 123})
    index = factory.open_collection(config)  # the composition root hands the setting on
    try:
        assert _shown_ef(index, 10) == 123
        with index.snapshot() as view:  # outside a search the session keeps pgvector's own
            assert int(view.conn.execute("SHOW hnsw.ef_search").fetchone()[0]) == 40
    finally:
        index.close()
