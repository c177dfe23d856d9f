"""Vector indexes: a small Protocol and the FAISS backend (flat by default, HNSW or IVF for large corpora)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ingest.config import DEFAULT_EF_SEARCH, INDEX_TYPES, ConfigError, check_ef_search
from ingest.fsutil import atomic_path


class VectorIndex(Protocol):
    """Holds only ids and vectors; text and provenance live in the store."""

    @property
    def ntotal(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class FaissIndex:
    """Inner-product FAISS index over normalised vectors (cosine similarity), keyed by chunk id."""

    def __init__(self, dim: int, kind: str = "flat", hnsw_m: int = 32, ivf_nlist: int = 256,
                 index: object | None = None, ef_search: int = DEFAULT_EF_SEARCH) -> None:
        import faiss

        if kind not in INDEX_TYPES:
            raise ConfigError(f"index type {kind!r} is not known; valid types are: {', '.join(INDEX_TYPES)}")
        self.dim, self.kind, self.hnsw_m, self.ivf_nlist = dim, kind, hnsw_m, ivf_nlist
        self.ef_search = check_ef_search(ef_search)  # HNSW candidates per search ([index] ef_search), raised to k
        self._faiss = faiss
        self._index = index if index is not None else self._empty()
        self.mapped = False  # True when the vectors are memory-mapped from the file (read-only)

    def _empty(self) -> object:
        f = self._faiss
        if self.kind == "hnsw":
            inner = f.IndexHNSWFlat(self.dim, self.hnsw_m, f.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = self.ef_search  # written to the file; searches pass their own (search_parameters)
        else:  # ivf is trained when built from vectors (see rebuild); empty it behaves as flat
            inner = f.IndexFlatIP(self.dim)
        return f.IndexIDMap2(inner)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def supports_remove(self) -> bool:
        return self.kind == "flat" or self.ntotal == 0

    def ids(self) -> np.ndarray:
        return self._faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        if vectors.shape[1] != self.dim:
            raise ConfigError(f"vectors of dimension {vectors.shape[1]} cannot go into an index of dimension {self.dim}")
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        if not self.supports_remove:
            raise NotImplementedError("this index type is rebuilt instead of edited")
        self._index.remove_ids(self._faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the whole content (used by HNSW/IVF, which do not support removal)."""
        f = self._faiss
        if self.kind == "ivf" and len(ids) >= 2 * 39:
            nlist = max(1, min(self.ivf_nlist, len(ids) // 39))
            quant = f.IndexFlatIP(self.dim)
            inner = f.IndexIVFFlat(quant, self.dim, nlist, f.METRIC_INNER_PRODUCT)
            inner.train(np.ascontiguousarray(vectors, dtype=np.float32))
            inner.nprobe = max(1, nlist // 8)
            self._index = f.IndexIDMap2(inner)
        else:
            self._index = self._empty()
        self.add(ids, vectors)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest per query; `allowed` restricts the search to those ids."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        if self.ntotal == 0:
            return np.full((len(q), k), -np.inf, dtype=np.float32), np.full((len(q), k), -1, dtype=np.int64)
        scores, ids = self._index.search(q, k, params=self.search_parameters(k, allowed))
        return scores, ids

    def search_parameters(self, k: int, allowed: np.ndarray | None = None) -> object | None:
        """What FAISS is given for a search of k hits: HNSW's efSearch (ef_search, raised to k), the ID selector of
        `allowed`; None for an unfiltered flat or IVF search (the index's own settings)."""
        f = self._faiss
        sel = f.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)) if allowed is not None else None
        inner = f.downcast_index(self._index.index)
        if isinstance(inner, f.IndexHNSW):
            return f.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, k))
        if sel is None:
            return None
        if isinstance(inner, f.IndexIVF):
            return f.SearchParametersIVF(sel=sel, nprobe=inner.nprobe)
        return f.SearchParameters(sel=sel)

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file, fsync, rename."""
        with atomic_path(path, mode=0o600) as tmp:
            self._faiss.write_index(self._index, str(tmp))

    @classmethod
    def load(cls, path: Path, kind: str, hnsw_m: int = 32, ivf_nlist: int = 256, mmap: bool = False,
             ef_search: int = DEFAULT_EF_SEARCH) -> FaissIndex:
        """Read a FAISS file; `mmap` maps the vectors in place (no copy, pages shared between processes: a reader's
        cold start does not read the whole file). A mapped index is read-only: writers load without it."""
        import faiss

        flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
        index = faiss.read_index(str(path), flags)
        loaded = cls(int(index.d), kind=kind, hnsw_m=hnsw_m, ivf_nlist=ivf_nlist, index=index, ef_search=ef_search)
        loaded.mapped = mmap
        return loaded
