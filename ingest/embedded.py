"""The embedded backend's read snapshot and writer: the index directory (FAISS + SQLite) behind ingest.backend's
protocols. The collection (ingest.collection) and the store (ingest.store) do the work; this module only pairs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import EllipsisType
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from ingest.collection import LOCK_FILE, Collection, empty_vectors, make_private_dir
from ingest.config import IngestConfig
from ingest.errors import IndexLockedError
from ingest.index import FaissIndex
from ingest.manifest import Manifest, next_manifest
from ingest.records import Chunk, Document
from ingest.store import ChunkFilter, Store, StoredDocument


class EmbeddedView:
    """One SQLite read transaction and the FAISS index of the generation it sees (IndexView)."""

    def __init__(self, store: Store, vectors: FaissIndex | None, manifest: Manifest | None, generation: int) -> None:
        self.store, self.vectors, self.manifest, self.generation = store, vectors, manifest, generation
        self._allowed: dict[ChunkFilter, np.ndarray] = {}

    def allowed(self, flt: ChunkFilter) -> np.ndarray:
        """The ids the filter admits, read once per snapshot."""
        ids = self._allowed.get(flt)
        if ids is None:
            ids = self._allowed[flt] = self.store.chunk_ids_where(flt)
        return ids

    def admits(self, flt: ChunkFilter) -> bool:
        return flt.empty or len(self.allowed(flt)) > 0

    def documents(self, tenant: str | None | EllipsisType = ...) -> list[StoredDocument]:
        return self.store.documents(tenant)

    def document(self, source: str, tenant: str | None) -> StoredDocument | None:
        return self.store.document(source, tenant)

    def chunks(self, ids: Iterable[int], flt: ChunkFilter | None = None) -> dict[int, Chunk]:
        return self.store.chunks(ids, flt)

    def chunk_ids_where(self, flt: ChunkFilter) -> np.ndarray:
        return self.store.chunk_ids_where(flt)

    def dense_search(self, qvec: np.ndarray, n: int, flt: ChunkFilter) -> list[tuple[int, float]]:
        """FAISS search restricted to the ids the filter admits (an ID selector inside the search)."""
        if self.vectors is None or self.vectors.ntotal == 0:
            return []
        allowed = None if flt.empty else self.allowed(flt)
        if allowed is not None and len(allowed) == 0:
            return []
        scores, ids = self.vectors.search(qvec, n, allowed=allowed)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def keyword_search(self, match: str, k: int, flt: ChunkFilter | None = None) -> list[tuple[int, float]]:
        return self.store.keyword_search(match, k, flt)

    def keyword_postings(self, term: str, cap: int) -> int:
        return self.store.keyword_postings(term, cap)

    def vectors_for_chunks(self, ids: list[int], dim: int) -> np.ndarray:
        return self.store.vectors_for_chunks(ids, dim)

    def cached_vectors(self, text_hashes: Iterable[str]) -> set[str]:
        return self.store.cached_vectors(text_hashes)

    def count(self, table: str) -> int:
        return self.store.count(table)


class EmbeddedChanges:
    """The store's writes of one run, with the chunk ids they add and remove (for the FAISS index)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.added: list[int] = []
        self.removed: list[int] = []
        self.deleted_documents = 0

    def delete_document(self, source: str, tenant: str | None) -> list[int]:
        ids = self.store.delete_document(source, tenant)
        self.removed.extend(ids)
        self.deleted_documents += 1
        return ids

    def add_document(self, doc: Document, path: str, root: str, chunks: list[Chunk], tenant: str | None,
                     tags: tuple[str, ...]) -> list[int]:
        ids = self.store.add_document(doc, path, root, chunks, tenant, tags)
        self.added.extend(ids)
        return ids

    def set_tags(self, source: str, tenant: str | None, tags: tuple[str, ...]) -> None:
        self.store.set_tags(source, tenant, tags)


class EmbeddedWriter:
    """The writer of an index directory: holds its lock file; commits write the next FAISS file, then the SQLite
    transaction pointing at it (Collection.commit_generation), so a crash at any moment leaves one generation."""

    def __init__(self, directory: Path, lock_timeout: float = 0.0) -> None:
        self.directory = Path(directory)
        make_private_dir(self.directory)
        self._lock = FileLock(str(self.directory / LOCK_FILE))
        try:
            self._lock.acquire(timeout=lock_timeout)
        except Timeout as e:
            raise IndexLockedError(
                f"index {self.directory} is being written by another ingest; wait for it to finish and retry"
            ) from e
        try:
            self.collection = Collection(self.directory, readonly=False)
        except BaseException:
            self._lock.release()
            raise

    @property
    def location(self) -> str:
        return str(self.directory)

    @property
    def manifest(self) -> Manifest | None:
        return self.collection.manifest

    @property
    def generation(self) -> int:
        return self.collection.generation

    def check_compatible(self, config: IngestConfig) -> None:
        self.collection.check_compatible(config)

    def check_embedder(self, model_id: str, dim: int, embedder: Any = None) -> None:
        self.collection.check_embedder(model_id, dim, embedder)

    def prepare(self) -> None:
        self.collection.remove_stale_files()  # files of a generation that a crash left uncommitted
        self.collection.repair_manifest_file()  # a crash just after a commit leaves manifest.json one generation behind

    def documents(self, tenant: str | None | EllipsisType = ...) -> list[StoredDocument]:
        return self.collection.store.documents(tenant)

    def cached_vectors(self, text_hashes: Iterable[str]) -> set[str]:
        return self.collection.store.cached_vectors(text_hashes)

    def put_vectors(self, hashes: list[str], vectors: np.ndarray) -> None:
        store = self.collection.store
        with store.transaction():
            store.put_vectors(hashes, vectors)

    def count(self, table: str) -> int:
        return self.collection.store.count(table)

    @contextmanager
    def changes(self, config: IngestConfig, embedder: Any, dim: int) -> Iterator[EmbeddedChanges]:
        coll = self.collection
        store = coll.store
        vectors = coll.vectors if coll.vectors is not None else empty_vectors(dim, config)
        store.db.execute("BEGIN IMMEDIATE")
        try:
            tx = EmbeddedChanges(store)
            yield tx
            new_vecs = store.vectors_for_chunks(tx.added, dim)
            if vectors.supports_remove:
                vectors.remove(np.asarray(tx.removed, dtype=np.int64))
                vectors.add(np.asarray(tx.added, dtype=np.int64), new_vecs)
            else:
                ids, all_vecs = store.all_chunk_vectors(dim)
                vectors.rebuild(ids, all_vecs)
            if tx.deleted_documents or tx.removed:  # vectors of replaced texts too, or the store grows with every edit
                store.prune_vectors()
            manifest = next_manifest(config, dim, coll.manifest, embedder, store.count("documents"),
                                     store.count("chunks"))
            coll.commit_generation(vectors, manifest)
        except BaseException:
            store.db.rollback()
            raise

    def close(self) -> None:
        try:
            self.collection.close()
        finally:
            self._lock.release()

    def __enter__(self) -> EmbeddedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
