"""The index directory: SQLite store + FAISS file of the committed generation + manifest, self-describing."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.config import DEFAULT_EF_SEARCH, IngestConfig, check_ef_search
from ingest.errors import IndexCorruptError, IndexUnavailableError
from ingest.fsutil import atomic_write
from ingest.index import FaissIndex
from ingest.manifest import Manifest, check_manifest_compatible, check_manifest_embedder, package_version
from ingest.schema import SCHEMA_VERSION
from ingest.store import Store

if TYPE_CHECKING:
    from ingest.embedded import EmbeddedView

log = logging.getLogger(__name__)

STORE_FILE = "store.sqlite"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".write.lock"


def vectors_file(directory: Path, generation: int) -> Path:
    return directory / f"vectors-{generation:08d}.faiss"


class Collection:
    """An index directory: the store and the FAISS index of the committed generation.

    Safe to share between threads: each thread reads through its own SQLite connection (so queries never wait
    on one another), and the FAISS index of a generation is shared read-only; a newer generation replaces it
    as a whole (`refresh`).
    """

    def __init__(self, directory: Path, readonly: bool = True, ef_search: int = DEFAULT_EF_SEARCH) -> None:
        self.directory = Path(directory)
        self.ef_search = check_ef_search(ef_search)  # HNSW search breadth of the FAISS index it loads ([index] ef_search)
        self._store_path = self.directory / STORE_FILE
        if readonly and not self._store_path.exists():
            raise IndexCorruptError(
                f"{self.directory} is not a rag index (no {STORE_FILE}); build one with: rag ingest PATH --index {self.directory}"
            )
        if not readonly:
            make_private_dir(self.directory)
        self._readonly = readonly
        self._local = threading.local()
        self._stores: list[Store] = []
        self._lock = threading.Lock()
        try:
            store = self.store
            if readonly and store.schema_version < SCHEMA_VERSION:
                Store(self._store_path, readonly=False).close()  # run pending migrations once
        except Exception as e:
            raise IndexCorruptError(f"{self._store_path}: cannot open the metadata store ({e})") from e
        self._state: tuple[int, Manifest | None] = (-1, None)  # the generation in force and its manifest
        self._vectors: tuple[int, FaissIndex | None] = (-1, None)  # (generation, its FAISS index), read when used
        self.refresh()

    @property
    def store(self) -> Store:
        """This thread's connection to the metadata store."""
        store = getattr(self._local, "store", None)
        if store is None:
            file_id = self._file_id()
            store = Store(self._store_path, readonly=self._readonly)
            self._local.store, self._local.file_id = store, file_id
            with self._lock:
                self._stores.append(store)
        return store

    def _file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._store_path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _current_store(self) -> Store:
        """This thread's connection, opened again when the store file was replaced since it was opened (an index
        folder rebuilt or swapped under a running server): an old connection keeps reading the old file. Called
        where a read begins, never inside one; the old connection is closed with the collection."""
        store = self.store
        now = self._file_id()
        if now is not None and now != getattr(self._local, "file_id", None):
            self._local.store = None
            store = self.store
        return store

    def close(self) -> None:
        with self._lock:
            stores, self._stores = self._stores, []
        for store in stores:
            store.close()

    def refresh(self) -> bool:
        """Move to the committed generation if it changed since the last look; True when it did. Its FAISS index is
        read when first used (`vectors`): an ingest that finds nothing changed never reads it.

        A store's generations only grow, so an older one is what a read snapshot that began before another thread
        moved on still sees: it does not move the collection back (the next reader would load the newer FAISS file
        again). It does when the store itself was replaced (another index, told apart by its creation time)."""
        return self._follow(self._current_store().generation)

    def _follow(self, gen: int) -> bool:
        """`refresh` to `gen`, the generation this thread's store sees."""
        if gen == self.generation:
            return False
        with self._lock:
            if gen == self.generation:
                return False
            raw = self.store.get_meta("manifest")
            manifest = Manifest(**json.loads(raw)) if raw else None
            current = self.manifest
            if gen < self.generation and manifest is not None and current is not None \
                    and manifest.created == current.created:
                return False
            self._state = (gen, manifest)
        return True

    @property
    def generation(self) -> int:
        return self._state[0]

    @property
    def manifest(self) -> Manifest | None:
        return self._state[1]

    @property
    def vectors(self) -> FaissIndex | None:
        """The FAISS index of the current generation (None before the first commit)."""
        return self._current()[0]

    def _current(self) -> tuple[FaissIndex | None, Manifest | None, int]:
        """(FAISS index, manifest, generation), all of one generation: one thread reads a new generation's index;
        the others wait for it rather than search the previous one with the new manifest."""
        gen, manifest = self._state
        loaded_gen, vectors = self._vectors
        if loaded_gen == gen:
            return vectors, manifest, gen
        _ = self.store  # this thread's connection, made before the lock (making one takes it)
        with self._lock:
            gen, manifest = self._state
            if self._vectors[0] != gen:
                self._vectors = (gen, self._load_vectors(gen, manifest) if manifest else None)
            return self._vectors[1], manifest, gen

    def _load_vectors(self, gen: int, m: Manifest) -> FaissIndex:
        path = vectors_file(self.directory, gen)
        for _ in range(3):
            try:
                return FaissIndex.load(path, kind=m.index_type, mmap=self._readonly, ef_search=self.ef_search)
            except RuntimeError:
                # A writer may have committed a newer generation and removed this file: follow it.
                newer = self.store.generation
                if newer != gen:
                    gen, path = newer, vectors_file(self.directory, newer)
                    continue
                break
        log.warning("%s is missing or unreadable; rebuilding the vector index from stored vectors", path)
        index = FaissIndex(m.dim, kind=m.index_type, ef_search=self.ef_search)
        ids, vecs = self.store.all_chunk_vectors(m.dim)
        index.rebuild(ids, vecs)
        return index

    def check_compatible(self, config: IngestConfig) -> None:
        """Refuse to mix embedders or chunking settings in one index."""
        check_manifest_compatible(self.manifest, str(self.directory), config)

    def check_embedder(self, model_id: str, dim: int, embedder: Any = None) -> None:
        """Refuse an embedder of another model, dimension or encoder family (e.g. int8 against fp32 vectors)."""
        check_manifest_embedder(self.manifest, str(self.directory), model_id, dim, embedder)

    # --- the IndexBackend protocol (ingest.backend) ------------------------------------------------
    @property
    def location(self) -> str:
        return str(self.directory)

    @property
    def schema_version(self) -> int:
        return self.store.schema_version

    @contextmanager
    def snapshot(self, tenants: tuple[str, ...] | None = None) -> Iterator[EmbeddedView]:
        """One read snapshot, on the newest committed generation. SQLite has no row-level security: the tenants
        are restricted by the filter each call is given (ChunkFilter.tenants)."""
        from ingest.embedded import EmbeddedView

        store = self._current_store()
        for attempt in range(3):
            with store.snapshot():
                seen = store.generation  # the snapshot's own generation (its first read begins it)
                self._follow(seen)
                vectors, manifest, gen = self._current()
                if seen == gen or attempt == 2:
                    yield EmbeddedView(store, vectors, manifest, gen)
                    return
            # The snapshot began before another thread moved the collection to a newer generation (whose FAISS
            # index is the one in memory): begin it again, so that its rows and its vectors are of one generation.

    def size_bytes(self) -> int:
        return self.size_on_disk()

    def probe(self) -> int:
        """The committed generation's chunk count (its manifest), through a fresh read-only connection: this
        process's own connections keep reading a folder removed under them. The FAISS file is not checked: a reader
        that finds it missing rebuilds it from the stored vectors (_load_vectors)."""
        if not self.directory.is_dir():
            raise IndexUnavailableError("the index folder is missing", str(self.directory))
        try:
            store = Store(self._store_path, readonly=True)
            try:
                raw = store.get_meta("manifest")
            finally:
                store.close()
        except sqlite3.Error as e:
            raise IndexUnavailableError("the index store cannot be read", f"{self._store_path}: {e}") from e
        return Manifest(**json.loads(raw)).chunks if raw else 0

    def consistency(self) -> list[str]:
        """Problems found: FAISS ids and SQLite chunk rows must be the same set; empty when consistent."""
        problems: list[str] = []
        db_ids = self.store.chunk_ids()
        faiss_ids = set(self.vectors.ids().tolist()) if self.vectors is not None else set()
        if db_ids != faiss_ids:
            problems.append(
                f"{len(db_ids - faiss_ids)} chunk(s) missing from the vector index, "
                f"{len(faiss_ids - db_ids)} vector(s) without a chunk"
            )
        missing = self.store.db.execute(
            "SELECT count(*) FROM chunks c LEFT JOIN vectors v ON v.text_hash=c.text_hash WHERE v.text_hash IS NULL"
        ).fetchone()[0]
        if missing:
            problems.append(f"{missing} chunk(s) without a stored vector")
        bad = self.store.db.execute("PRAGMA quick_check").fetchone()[0]
        if bad != "ok":
            problems.append(f"SQLite quick_check: {bad}")
        stale = self.manifest_file_problem()
        if stale:
            problems.append(stale)
        return problems

    def manifest_file_problem(self) -> str:
        """Why manifest.json does not describe the committed generation ("" when it does, or the index is empty)."""
        if self.manifest is None:
            return ""
        path = self.directory / MANIFEST_FILE
        gen = self.manifest.generation
        repair = "an ingest was interrupted after its commit; the next rag ingest (or rag stats) rewrites it"
        try:
            on_disk = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"{MANIFEST_FILE} is missing while the store is at generation {gen} ({repair})"
        except (OSError, ValueError) as e:
            return f"{MANIFEST_FILE} is unreadable ({e}) while the store is at generation {gen} ({repair})"
        if not isinstance(on_disk, dict) or on_disk.get("generation") != gen:
            found = on_disk.get("generation") if isinstance(on_disk, dict) else None
            return f"{MANIFEST_FILE} describes generation {found}, the store generation {gen} ({repair})"
        if on_disk != asdict(self.manifest):
            return f"{MANIFEST_FILE} differs from the manifest in the store at generation {gen} ({repair})"
        return ""

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    # --- write side (the caller holds the write lock) -------------------------------------------
    def commit_generation(self, vectors: FaissIndex, manifest: Manifest) -> None:
        """Write the FAISS file of the next generation, then commit the open store transaction pointing at it.

        A crash before the commit leaves the previous generation (and its file) in force; a crash after
        it leaves the new one complete. Old files are removed only once nothing points at them.
        """
        gen = self.store.generation + 1
        vectors.save(vectors_file(self.directory, gen))
        now = time.time()
        m = Manifest(**{**asdict(manifest), "generation": gen, "updated": now,
                        "created": manifest.created or now, "rag_version": manifest.rag_version or package_version()})
        self.store.set_meta("manifest", m.to_json())
        self.store.set_meta("generation", str(gen))
        self.store.db.commit()
        with self._lock:
            self._state, self._vectors = (gen, m), (gen, vectors)
        atomic_write(self.directory / MANIFEST_FILE, m.to_json(), mode=0o600)
        self.remove_stale_files()

    def repair_manifest_file(self) -> None:
        """Rewrite manifest.json when a crash between the store commit and its write left it stale."""
        if self.manifest is None:
            return
        path = self.directory / MANIFEST_FILE
        text = self.manifest.to_json()
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except OSError:
            pass
        atomic_write(path, text, mode=0o600)

    def stale_files(self) -> list[Path]:
        """FAISS files no committed generation points at (left by a crash or by a reader-held replacement)."""
        keep = vectors_file(self.directory, self.store.generation).name
        return sorted(p for p in self.directory.glob("vectors-*.faiss*") if p.name != keep)

    def remove_stale_files(self) -> None:
        for p in self.stale_files():
            p.unlink(missing_ok=True)


def empty_vectors(dim: int, config: IngestConfig) -> FaissIndex:
    return FaissIndex(dim, kind=config.index_type, hnsw_m=config.hnsw_m, ivf_nlist=config.ivf_nlist)


def make_private_dir(directory: Path) -> None:
    """Create the index directory (0700: its documents are nobody else's business), tightening an existing one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mode = directory.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            os.chmod(directory, mode & 0o700)
        except PermissionError:  # not ours: leave it (its owner chose)
            log.warning("%s is readable by other users (mode %o) and cannot be changed", directory, mode)
