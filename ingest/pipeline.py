"""One ingest run: scan, load, chunk, embed what is new, and commit a new index generation atomically."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ingest.chunking import Chunker
from ingest.collection import LOCK_FILE, Collection, Manifest, empty_vectors
from ingest.config import IngestConfig
from ingest.embedding import Embedder, load_tokenizer, open_embedder
from ingest.errors import IndexLockedError, IngestError, LoaderError
from ingest.loaders import kind_of, load, read_bytes
from ingest.records import TENANT_NAME, TENANT_RULE, Chunk, Document, sha256_hex

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
EMBED_BATCH = 256


@dataclass(frozen=True)
class Failure:
    source: str
    error: str


@dataclass
class IngestReport:
    """What an ingest run did; `failed` lists each file that could not be ingested and why."""

    index: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    documents_total: int = 0
    pages: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    generation: int = 0

    def summary(self) -> dict[str, object]:
        d = asdict(self)
        for key in ("added", "updated", "unchanged", "removed"):
            d[f"{key}_files"] = d.pop(key)
        d.update({k: len(getattr(self, k)) for k in ("added", "updated", "unchanged", "removed")})
        return d


@dataclass(frozen=True)
class _Found:
    path: Path
    root: Path
    source: str


def scan(paths: list[Path], extensions: tuple[str, ...]) -> tuple[list[_Found], list[Failure]]:
    """Files to ingest under the given paths (symlinks followed, loops cut), and what was skipped."""
    found: list[_Found] = []
    skipped: list[Failure] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists() and not p.is_symlink():
            raise IngestError(f"{p}: no such file or directory")
        if not p.is_dir():  # a file, a FIFO or a broken link: refused or read by _load_one with a reason
            found.append(_Found(p.absolute(), p.absolute().parent, p.name))
            continue
        root = p.absolute()
        seen_dirs: set[tuple[int, int]] = set()
        for f in _walk(root, seen_dirs, skipped):
            found.append(_Found(f, root, f.relative_to(root).as_posix()))
    files: list[_Found] = []
    for f in found:
        if f.path.suffix.lower() not in extensions or kind_of(f.path) is None:
            skipped.append(Failure(f.source, f"skipped: unsupported file type {f.path.suffix or '(none)'!r}"))
        else:
            files.append(f)
    return files, skipped


def _walk(directory: Path, seen: set[tuple[int, int]], skipped: list[Failure]) -> Iterator[Path]:
    try:
        st = directory.stat()
    except OSError as e:
        skipped.append(Failure(str(directory), f"cannot open directory: {e.strerror}"))
        return
    if (st.st_dev, st.st_ino) in seen:
        return  # a symlink back into a folder already walked
    seen.add((st.st_dev, st.st_ino))
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        skipped.append(Failure(str(directory), f"cannot list directory: {e.strerror}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path, seen, skipped)
        else:
            yield path


class Ingestor:
    """Applies one ingest run to an index directory; holds the single-writer lock while it runs."""

    def __init__(self, index_dir: Path, config: IngestConfig, embedder: Embedder | None = None,
                 progress: Progress | None = None, lock_timeout: float = 0.0) -> None:
        self.index_dir = Path(index_dir)
        self.config = config
        self._embedder = embedder
        self._chunker: Chunker | None = None
        self._progress = progress or (lambda stage, done, total: None)
        self._lock = FileLock(str(self.index_dir / LOCK_FILE))
        self._lock_timeout = lock_timeout

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # loaded only when something needs embedding
            self._embedder = open_embedder(self.config.embedding)
        return self._embedder

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            if self._embedder is not None:
                tokenizer, max_tokens = self._embedder.tokenizer, self._embedder.max_tokens
            else:  # the tokenizer alone: the model is loaded only when something needs embedding
                tokenizer, max_tokens = load_tokenizer(self.config.embedding)
            self._chunker = Chunker(tokenizer, self.config, max_tokens)
        return self._chunker

    def run(self, paths: list[Path], prune: bool = False, tenant: str | None = None,
            tags: tuple[str, ...] = (), remove: list[str] | None = None) -> IngestReport:
        if tenant is not None and not TENANT_NAME.match(tenant):
            raise IngestError(f"bad tenant name {tenant!r}: use {TENANT_RULE}")
        self.index_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=self._lock_timeout)
        except Timeout as e:
            raise IndexLockedError(
                f"index {self.index_dir} is being written by another ingest; wait for it to finish and retry"
            ) from e
        try:
            coll = Collection(self.index_dir, readonly=False)
            try:
                return self._run(coll, paths, prune, tenant, tags, remove or [])
            finally:
                coll.close()
        finally:
            self._lock.release()

    def _run(self, coll: Collection, paths: list[Path], prune: bool, tenant: str | None,
             tags: tuple[str, ...], remove: list[str]) -> IngestReport:
        t0 = time.perf_counter()
        coll.check_compatible(self.config)
        coll.remove_stale_files()  # files of a generation that a crash left uncommitted
        coll.repair_manifest_file()  # a crash just after a commit leaves manifest.json one generation behind
        store = coll.store
        files, skipped = scan(paths, self.config.extensions)
        known = {d.source: d for d in store.documents(tenant)}  # a document is (tenant, source)
        rep = IngestReport(index=str(self.index_dir), skipped=skipped)
        pending: list[tuple[_Found, Document, list[Chunk]]] = []
        seen: set[str] = set()
        tag_changes: list[str] = []
        for i, f in enumerate(files):
            self._progress("load", i, len(files))
            if f.source in seen:
                rep.failed.append(Failure(f.source, "skipped: another path argument has a file with the same source"))
                continue
            seen.add(f.source)
            try:
                doc, chunks = self._load_one(f, known.get(f.source), tenant, tags)
            except LoaderError as e:
                rep.failed.append(Failure(f.source, e.reason))
                log.info("failed: %s", e)
                continue
            if doc is None:
                rep.unchanged.append(f.source)
                if known[f.source].tags != tags:
                    tag_changes.append(f.source)
                continue
            (rep.updated if f.source in known else rep.added).append(f.source)
            pending.append((f, doc, chunks))
            rep.pages += sum(1 for s in doc.sections if s.page is not None)
        self._progress("load", len(files), len(files))

        roots = {str(f.root) for f in files} | {str(Path(p).absolute()) for p in paths}
        gone = set(remove)
        if prune:
            # Only this tenant's documents, and only those ingested from the roots given now: a prune of one
            # folder never removes what other folders or other tenants put in the index.
            for src, d in known.items():
                if src not in seen and d.root in roots:
                    gone.add(src)
        rep.removed.extend(sorted(s for s in gone if s in known))
        if not pending and not rep.removed and not tag_changes:
            return self._finish(rep, coll, t0)

        t_embed = self._embed_missing(store, [c for _, _, cs in pending for c in cs], rep)
        self._commit(coll, pending, rep, tenant, tags, tag_changes)
        return self._finish(rep, coll, t0, t_embed)

    def _load_one(self, f: _Found, old: object | None, tenant: str | None,
                  tags: tuple[str, ...]) -> tuple[Document | None, list[Chunk]]:
        max_bytes = int(self.config.max_file_mb * 1024 * 1024)
        try:
            st = f.path.stat()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise LoaderError(f.source, "symbolic link loop") from e
            if e.errno == errno.ENOENT:
                raise LoaderError(f.source, "file vanished before it could be read (or is a broken link)") from e
            raise LoaderError(f.source, f"cannot stat file: {e.strerror}") from e
        if not stat.S_ISREG(st.st_mode):  # reading a FIFO with no writer would block forever
            raise LoaderError(f.source, "not a regular file (a FIFO, socket or device)")
        size = st.st_size
        if size > max_bytes:
            raise LoaderError(f.source, f"file is {size / 2**20:.0f} MiB, over ingest.max_file_mb={self.config.max_file_mb}")
        data = read_bytes(f.path, f.source)
        if old is not None and getattr(old, "doc_hash", None) == sha256_hex(data):
            return None, []
        doc = load(f.path, f.source, data)
        for w in doc.warnings:
            log.info("%s: %s", f.source, w)
        return doc, self.chunker.split(doc, tenant, tags)

    def _embed_missing(self, store, chunks: list[Chunk], rep: IngestReport) -> float:
        """Embed texts with no cached vector, longest first, committing each batch (kept across crashes)."""
        unique: dict[str, str] = {}
        for c in chunks:
            unique.setdefault(c.text_hash, c.text)
        have = store.cached_vectors(unique)
        todo = sorted(((h, t) for h, t in unique.items() if h not in have), key=lambda ht: -len(ht[1]))
        spent = 0.0
        for start in range(0, len(todo), EMBED_BATCH):
            self._progress("embed", start, len(todo))
            batch = todo[start:start + EMBED_BATCH]
            t = time.perf_counter()
            vecs = self.embedder.embed([text for _, text in batch])
            spent += time.perf_counter() - t
            with store.transaction():
                store.put_vectors([h for h, _ in batch], vecs)
        self._progress("embed", len(todo), len(todo))
        rep.chunks_embedded = len(todo)
        return spent

    def _commit(self, coll: Collection, pending: list[tuple[_Found, Document, list[Chunk]]], rep: IngestReport,
                tenant: str | None, tags: tuple[str, ...], tag_changes: list[str]) -> None:
        store = coll.store
        dim = coll.manifest.dim if coll.manifest else self.embedder.dim
        vectors = coll.vectors if coll.vectors is not None else empty_vectors(dim, self.config)
        self._progress("commit", 0, 1)
        store.db.execute("BEGIN IMMEDIATE")
        try:
            removed_ids: list[int] = []
            for src in [*rep.removed, *(d.source for _, d, _ in pending if d.source in rep.updated)]:
                removed_ids.extend(store.delete_document(src, tenant))
            added_ids: list[int] = []
            for f, doc, chunks in pending:
                added_ids.extend(store.add_document(doc, str(f.path), str(f.root), chunks, tenant, tags))
            for src in tag_changes:
                store.set_tags(src, tenant, tags)
            new_vecs = store.vectors_for_chunks(added_ids, dim)
            if vectors.supports_remove:
                vectors.remove(np.asarray(removed_ids, dtype=np.int64))
                vectors.add(np.asarray(added_ids, dtype=np.int64), new_vecs)
            else:
                ids, all_vecs = store.all_chunk_vectors(dim)
                vectors.rebuild(ids, all_vecs)
            if rep.removed or removed_ids:  # vectors of replaced texts too, or the store grows with every edit
                store.prune_vectors()
            m = coll.manifest
            manifest = Manifest(
                embedding_model=self.config.embedding.model, dim=dim, chunk_size=self.config.chunk_size,
                chunk_overlap=self.config.chunk_overlap, index_type=self.config.index_type,
                created=m.created if m else 0.0, documents=store.count("documents"), chunks=store.count("chunks"),
            )
            coll.commit_generation(vectors, manifest)
        except BaseException:
            store.db.rollback()
            raise
        rep.chunks_added = len(added_ids)
        rep.chunks_removed = len(removed_ids)
        self._progress("commit", 1, 1)

    def _finish(self, rep: IngestReport, coll: Collection, t0: float, t_embed: float = 0.0) -> IngestReport:
        rep.seconds = time.perf_counter() - t0
        rep.embed_seconds = t_embed
        rep.chunks_total = coll.store.count("chunks")
        rep.documents_total = coll.store.count("documents")
        rep.generation = coll.generation
        return rep


def ingest_paths(paths: list[Path], index_dir: Path, config: IngestConfig, *, prune: bool = False,
                 tenant: str | None = None, tags: tuple[str, ...] = (), embedder: Embedder | None = None,
                 progress: Progress | None = None, remove: list[str] | None = None) -> IngestReport:
    """Ingest files and folders into the index at `index_dir` (created if needed)."""
    return Ingestor(index_dir, config, embedder=embedder, progress=progress).run(
        paths, prune=prune, tenant=tenant, tags=tags, remove=remove)
