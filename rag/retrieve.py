"""Retrieval: dense (FAISS or pgvector), keyword (SQLite FTS5 BM25 or PostgreSQL full-text search) and their fusion,
with filters applied inside, over any index backend (ingest.backend)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ingest.backend import IndexBackend, IndexView
from ingest.config import ConfigError
from ingest.embedding import Embedder
from ingest.store import ChunkFilter
from rag.config import MODES, RetrievalConfig
from rag.records import Evidence, Hit
from rag.text import content_words, word_support

log = logging.getLogger(__name__)

FILTER_KEYS = {"source": "sources", "type": "kinds", "kind": "kinds", "section": "sections", "tag": "tags"}


def parse_filters(specs: list[str] | tuple[str, ...], tenants: tuple[str, ...] | None = None) -> ChunkFilter:
    """Parse "key=value" filters (source=GLOB, type=pdf|markdown|html|text, section=GLOB, tag=NAME)."""
    values: dict[str, list[str]] = {v: [] for v in FILTER_KEYS.values()}
    for spec in specs:
        key, sep, value = spec.partition("=")
        key = key.strip().lower()
        if not sep or key not in FILTER_KEYS or not value.strip():
            raise ConfigError(
                f"bad filter {spec!r}: use KEY=VALUE with KEY one of {', '.join(sorted(FILTER_KEYS))}"
                " (e.g. source='*.pdf', type=html, section='*Install*', tag=manuals)"
            )
        values[FILTER_KEYS[key]].append(value.strip())
    bad = [k for k in values["kinds"] if k not in ("pdf", "markdown", "html", "text")]
    if bad:
        raise ConfigError(f"unknown file type {bad[0]!r}; valid types are: html, markdown, pdf, text")
    return ChunkFilter(**{k: tuple(v) for k, v in values.items()}, tenants=tenants)


def fts_query(question: str) -> str:
    """An FTS5 OR-query of the question's content words, each quoted (so no FTS syntax leaks in)."""
    return " OR ".join(fts_terms(question))


def fts_terms(question: str) -> list[str]:
    return ['"' + w.replace('"', '""') + '"' for w in dict.fromkeys(content_words(question))]


# BM25 scores every chunk that holds any query term, and those postings are what made hybrid search miss 15 ms at
# 100k chunks. So the OR query takes the question's terms rarest first while their postings add up to at most this
# many (the rarest term always; common terms have low idf and add little to the ranking of the top candidates).
# An index of at most this many chunks is never cut, which keeps the dev corpora's ranking as it was.
POSTING_BUDGET = 8192


class _Postings:
    """Capped posting counts per (generation, term), shared by the threads of one retriever."""

    def __init__(self, size: int = 1 << 14) -> None:
        self._counts: dict[tuple[int, str, int], int] = {}
        self._size = size

    def get(self, store: IndexView, generation: int, term: str, cap: int | None = None) -> int:
        cap = cap or POSTING_BUDGET
        key = (generation, term, cap)
        n = self._counts.get(key)
        if n is None:
            n = store.keyword_postings(term, cap)
            if len(self._counts) >= self._size:
                self._counts.clear()
            self._counts[key] = n
        return n


def keyword_match(question: str, store: IndexView, chunks: int, generation: int, postings: _Postings) -> str:
    """The FTS5 query for a question: every content word, or only the rarer ones on a large index."""
    terms = fts_terms(question)
    if len(terms) > 1 and chunks > POSTING_BUDGET:
        counts = {t: postings.get(store, generation, t) for t in terms}
        if min(counts.values()) >= POSTING_BUDGET:  # every term is common: the rarest, counted exactly (cached)
            return min(terms, key=lambda t: postings.get(store, generation, t, cap=chunks + 1))
        kept: list[str] = []
        total = 0
        for t in sorted(terms, key=lambda t: counts[t]):
            if kept and total + counts[t] > POSTING_BUDGET:
                break
            kept.append(t)
            total += counts[t]
        terms = [t for t in terms if t in kept]  # question order, as before
    return " OR ".join(terms)


@dataclass(frozen=True)
class RetrievalResult:
    hits: list[Hit]
    evidence: Evidence


class Retriever:
    """Dense, keyword or hybrid search over one index (either backend)."""

    def __init__(self, collection: IndexBackend, embedder: Embedder, config: RetrievalConfig) -> None:
        self.collection = collection
        self.embedder = embedder
        self.config = config
        self._postings = _Postings()
        if collection.manifest is not None:
            collection.check_embedder(embedder.model_id, embedder.dim, embedder)

    def search(self, query: str, k: int | None = None, mode: str | None = None,
               filters: ChunkFilter | None = None) -> RetrievalResult:
        """The top-k hits for a query (best first) and the retrieval evidence behind them."""
        cfg = self.config
        k = k or cfg.k
        mode = mode or cfg.mode
        if mode not in MODES:
            raise ConfigError(f"retrieval mode {mode!r} is not known; valid modes are: {', '.join(MODES)}")
        flt = filters or ChunkFilter()
        n = max(k, cfg.candidates)
        # Dense scores also feed the refusal evidence, so they are computed in every mode.
        qvec = self.embedder.embed([query])
        keyword: list[tuple[int, float]] = []
        if flt.tenants == ():  # no tenant at all: nothing to read
            return RetrievalResult([], Evidence(0.0, 0.0, False))
        # One read snapshot from the filter to the text: a writer committing meanwhile (a tenant's document
        # deleted, another's added) cannot change which rows the ids name; the text fetch re-applies the filter.
        with self.collection.snapshot(flt.tenants) as store:
            if not flt.empty and not store.admits(flt):
                return RetrievalResult([], Evidence(0.0, 0.0, False))
            dense = store.dense_search(qvec, n, flt)  # the filter inside the search, never after its top-n cut
            if mode in ("keyword", "hybrid"):
                m = store.manifest
                match = keyword_match(query, store, m.chunks if m else 0, store.generation, self._postings)
                keyword = store.keyword_search(match, n, flt) if match else []
            if mode == "dense":
                ranked = [(cid, s) for cid, s in dense]
            elif mode == "keyword":
                ranked = list(keyword)
            else:
                ranked = self._fuse(dense, keyword)
            if cfg.mmr_lambda < 1.0 and len(ranked) > 1:
                ranked = self._mmr(store, qvec[0], ranked, k)
            ranked = ranked[:k]
            chunks = store.chunks((cid for cid, _ in ranked), flt)
        d_rank = {cid: (i + 1, s) for i, (cid, s) in enumerate(dense)}
        k_rank = {cid: (i + 1, s) for i, (cid, s) in enumerate(keyword)}
        hits = [
            Hit(chunk=chunks[cid], score=float(s),
                dense_score=d_rank[cid][1] if cid in d_rank else None,
                keyword_score=k_rank[cid][1] if cid in k_rank else None,
                dense_rank=d_rank[cid][0] if cid in d_rank else None,
                keyword_rank=k_rank[cid][0] if cid in k_rank else None)
            for cid, s in ranked if cid in chunks
        ]
        top_kw = {cid for cid, _ in keyword[:5]}
        evidence = Evidence(
            best_dense=float(dense[0][1]) if dense else 0.0,
            keyword_overlap=keyword_overlap(query, [h.chunk.text + " " + h.chunk.section for h in hits[:5]]),
            agreement=bool(dense) and dense[0][0] in top_kw,
        )
        return RetrievalResult(hits, evidence)

    def _fuse(self, dense: list[tuple[int, float]], keyword: list[tuple[int, float]]) -> list[tuple[int, float]]:
        cfg = self.config
        fused: dict[int, float] = {}
        if cfg.fusion == "rrf":
            for ranked in (dense, keyword):
                for rank, (cid, _) in enumerate(ranked, start=1):
                    fused[cid] = fused.get(cid, 0.0) + 1.0 / (cfg.rrf_k + rank)
        else:
            for ranked, weight in ((dense, cfg.dense_weight), (keyword, 1.0 - cfg.dense_weight)):
                if not ranked:
                    continue
                hi, lo = ranked[0][1], ranked[-1][1]
                span = (hi - lo) or 1.0
                for cid, s in ranked:
                    fused[cid] = fused.get(cid, 0.0) + weight * (s - lo) / span
        return sorted(fused.items(), key=lambda kv: -kv[1])

    def _mmr(self, store: IndexView, qvec: np.ndarray, ranked: list[tuple[int, float]],
             k: int) -> list[tuple[int, float]]:
        """Maximal marginal relevance over the fused candidates, by their stored vectors."""
        lam = self.config.mmr_lambda
        pool = ranked[: max(k * 3, k)]
        ids = [cid for cid, _ in pool]
        dim = store.manifest.dim if store.manifest else len(qvec)
        vecs = store.vectors_for_chunks(ids, dim)
        rel = vecs @ qvec
        chosen: list[int] = []
        left = list(range(len(ids)))
        while left and len(chosen) < k:
            red = (vecs[left] @ vecs[chosen].T).max(axis=1) if chosen else np.zeros(len(left))
            best = left[int(np.argmax(lam * rel[left] - (1 - lam) * red))]
            chosen.append(best)
            left.remove(best)
        return [pool[i] for i in chosen] + ranked[len(pool):]


def keyword_overlap(question: str, texts: list[str]) -> float:
    """Share of the question's content words that occur in the texts."""
    return word_support(question, " ".join(texts), empty=1.0)
