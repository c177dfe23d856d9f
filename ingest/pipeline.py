"""One ingest run: scan, load, chunk, embed what is new, and commit a new index generation atomically."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from ingest.backend import IndexTarget, IndexWriter, PostgresTarget, open_writer
from ingest.chunking import Chunker
from ingest.collection import LOCK_FILE, STORE_FILE, Collection
from ingest.config import IngestConfig
from ingest.distributed import Executor, open_executor
from ingest.embedding import Embedder, Encoder, load_tokenizer, open_embedder
from ingest.errors import IngestError, LoaderError
from ingest.isolation import LoaderPool
from ingest.loaders import kind_of
from ingest.loaders.ocr import OCR_SECTION
from ingest.records import TENANT_NAME, TENANT_RULE, Chunk, Document, sha256_hex
from ingest.scan import Failure, Found, read_file, scan
from ingest.store import StoredDocument
from ingest.worker import EarlyTexts, LoadResult, LoadTask, WorkerSettings, tokenizer_json

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
EMBED_BATCH = 256
# Texts waiting for a vector are embedded once EMBED_BUFFER_BATCHES batches' worth have arrived, the longest first:
# batches of similar lengths pad as little as a sort of the whole run would (sqlite-docs: 1.07 padded tokens per
# token, as before; embedding each batch as soon as it fills: 1.13, +5 % compute for ~3 % of parsing hidden).
EMBED_BUFFER_BATCHES = 4
# When nothing parsed is waiting, the caller embeds what it has once this many texts wait (up to a batch) rather
# than idle: the first vectors start as soon as a file's first pages or sections are chunked. Parser workers send
# a big file's chunk texts ahead in groups of this many.
IDLE_BATCH = 32


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
    # Per file kind (pdf, docx, ...): files ingested (added or updated), unchanged and failed in this run.
    formats: dict[str, dict[str, int]] = field(default_factory=dict)
    pages_without_text: dict[str, list[int]] = field(default_factory=dict)  # source -> pages (or slides) with no text
    ocr_pages: int = 0  # pages whose text was read by OCR
    warnings: list[Failure] = field(default_factory=list)  # what a loader noted about a file it ingested

    def count(self, source: str, outcome: str) -> None:
        """One file of this run, by its kind: outcome is ingested, unchanged or failed."""
        kind = kind_of(Path(source)) or (Path(source).suffix.lower().lstrip(".") or "(none)")
        counts = self.formats.setdefault(kind, {"ingested": 0, "unchanged": 0, "failed": 0})
        counts[outcome] += 1

    def note(self, doc: Document) -> None:
        """What an ingested document says about itself: pages without text, pages read by OCR, warnings."""
        if doc.pages_without_text:
            self.pages_without_text[doc.source] = list(doc.pages_without_text)
        self.ocr_pages += len({s.page for s in doc.sections if s.section == OCR_SECTION})
        self.warnings.extend(Failure(doc.source, w) for w in doc.warnings)

    def summary(self) -> dict[str, object]:
        d = asdict(self)
        for key in ("added", "updated", "unchanged", "removed"):
            d[f"{key}_files"] = d.pop(key)
        d.update({k: len(getattr(self, k)) for k in ("added", "updated", "unchanged", "removed")})
        return d


class Ingestor:
    """Applies one ingest run to an index (a directory, or a PostgreSQL schema); holds the single-writer lock while
    it runs."""

    def __init__(self, index_dir: IndexTarget | str, config: IngestConfig, embedder: Embedder | None = None,
                 progress: Progress | None = None, lock_timeout: float = 0.0, executor: Executor | None = None) -> None:
        self.target: IndexTarget = index_dir if isinstance(index_dir, PostgresTarget) else Path(index_dir)
        self.config = config
        self._embedder = embedder
        self._chunker: Chunker | None = None
        self._tokenizer_cache: tuple[Any, int] | None = None
        self._index_encoder: Encoder | None = None  # the encoder the index's vectors were made with
        self._progress = progress or (lambda stage, done, total: None)
        self._lock_timeout = lock_timeout
        self._executor = executor  # None: parse in local worker processes, embed here; else where it says (e.g. Ray)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # loaded only when something needs embedding
            self._embedder = open_embedder(self.config.embedding, index=self._index_encoder)  # same family as the index
        return self._embedder

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            tokenizer, max_tokens = self._tokenizer()
            self._chunker = Chunker(tokenizer, self.config, max_tokens)
        return self._chunker

    def _tokenizer(self) -> tuple[Any, int]:
        """(tokenizer, max word pieces): the embedder's, or the tokenizer alone, so that the model is loaded only
        when something needs embedding."""
        if self._embedder is not None:
            return self._embedder.tokenizer, self._embedder.max_tokens
        if self._tokenizer_cache is None:
            self._tokenizer_cache = load_tokenizer(self.config.embedding)
        return self._tokenizer_cache

    def run(self, paths: list[Path], prune: bool = False, tenant: str | None = None,
            tags: tuple[str, ...] = (), remove: list[str] | None = None) -> IngestReport:
        if tenant is not None and not TENANT_NAME.match(tenant):
            raise IngestError(f"bad tenant name {tenant!r}: use {TENANT_RULE}")
        writer = open_writer(self.target, self._lock_timeout)  # IndexLockedError while another run writes
        try:
            return self._run(writer, paths, prune, tenant, tags, remove or [])
        finally:
            writer.close()
            if self._executor is not None:
                self._executor.close()

    def _run(self, coll: IndexWriter, paths: list[Path], prune: bool, tenant: str | None,
             tags: tuple[str, ...], remove: list[str]) -> IngestReport:
        t0 = time.perf_counter()
        coll.check_compatible(self.config)
        self._index_encoder = coll.manifest.encoder if coll.manifest else None
        if self._embedder is not None and coll.manifest is not None:  # a handed-in embedder must match the index
            coll.check_embedder(self._embedder.model_id, self._embedder.dim, self._embedder)
        if self._executor is not None and self._embedder is None:  # its actors start only once a file is shipped
            self._embedder = self._executor.embedder(self.config.embedding, self._index_encoder)
        coll.prepare()  # what a crashed run left (embedded: stale FAISS files, a manifest.json behind)
        self._progress("scan", 0, 1)
        files, skipped = scan(paths, self.config.extensions)
        self._progress("scan", 1, 1)
        known = {d.source: d for d in coll.documents(tenant)}  # a document is (tenant, source)
        rep = IngestReport(index=coll.location, skipped=skipped)
        loaded: dict[int, tuple[Found, Document, list[Chunk]]] = {}
        tag_changes: list[str] = []
        vectors = _VectorCache(coll, lambda texts: self.embedder.embed(texts), self._progress,
                               self._executor.embed_batch if self._executor is not None else EMBED_BATCH)
        self._progress("load", 0, len(files))
        pool = (self._executor.loader_pool(self._worker_settings, self.config.load_timeout_s) if self._executor
                else LoaderPool(self._worker_settings, self.config.load_workers, self.config.load_timeout_s))
        with pool:
            done = 0
            for result in pool.map(self._prepare(files, known, tenant, tags)):
                if isinstance(result, EarlyTexts):  # a big file's first chunks: embedding starts while it is chunked
                    vectors.add_texts({sha256_hex(t): t for t in result.texts}, idle=not pool.ready())
                    continue
                done += 1
                f = files[result.key]
                for level, name, message in result.logs:  # what the parsers logged in the worker
                    logging.getLogger(name).log(level, "%s: %s", f.source, message)
                rep.count(f.source, "ingested" if result.status == "loaded" else result.status)
                if result.status == "failed":
                    rep.failed.append(Failure(f.source, result.error))
                    log.info("failed: %s: %s", f.source, result.error)
                elif result.status == "unchanged":
                    rep.unchanged.append(f.source)
                    if known[f.source].tags != tags:
                        tag_changes.append(f.source)
                else:
                    doc = result.document
                    assert doc is not None
                    for w in doc.warnings:
                        log.info("%s: %s", f.source, w)
                    chunks = list(result.chunks) if result.chunks is not None else self.chunker.split(doc, tenant, tags)
                    (rep.updated if f.source in known else rep.added).append(f.source)
                    loaded[result.key] = (f, doc, chunks)
                    rep.pages += sum(1 for s in doc.sections if s.page is not None)
                    rep.note(doc)
                    # Buffered to sort by length, except that what waits (up to a batch) is embedded at once whenever
                    # no parsed file is waiting: the caller would otherwise idle while the workers parse.
                    vectors.add(chunks, idle=not pool.ready())
                self._progress("load", done, len(files))
        for names in (rep.added, rep.updated, rep.unchanged):
            names.sort()
        rep.failed.sort(key=lambda x: x.source)
        pending = [loaded[k] for k in sorted(loaded)]  # in scan order, whatever order the workers finished in

        roots = {str(f.root) for f in files} | {str(Path(p).absolute()) for p in paths}
        gone = set(remove)
        if prune:
            # Only this tenant's documents, and only those ingested from the roots given now: a prune of one
            # folder never removes what other folders or other tenants put in the index.
            seen = {f.source for f in files}
            for src, d in known.items():
                if src not in seen and d.root in roots:
                    gone.add(src)
        rep.removed.extend(sorted(s for s in gone if s in known))
        if not pending and not rep.removed and not tag_changes:
            return self._finish(rep, coll, t0)

        vectors.flush()
        rep.chunks_embedded = vectors.embedded
        self._commit(coll, pending, rep, tenant, tags, tag_changes)
        return self._finish(rep, coll, t0, vectors.seconds)

    def _worker_settings(self) -> WorkerSettings:
        """What the parser workers need; built when the first one starts (a run with nothing new starts none)."""
        _ = self.chunker  # checks the chunking settings here, once, rather than failing in every worker
        tokenizer, max_tokens = self._tokenizer()
        # Local workers send chunk texts ahead in groups of IDLE_BATCH while they chunk a file (a PDF's leading pages
        # while it is read), once a file has that many; Ray embeds on the cluster instead.
        return WorkerSettings(self.config, tokenizer_json(tokenizer), max_tokens, self.config.load_memory_mb,
                              logging.getLogger().getEffectiveLevel(), IDLE_BATCH if self._executor is None else 0)

    def _prepare(self, files: list[Found], known: dict[str, StoredDocument], tenant: str | None,
                 tags: tuple[str, ...]) -> Iterator[LoadTask | LoadResult]:
        """Read each file (in the loader pool's thread): what is unchanged or unreadable never reaches a worker."""
        max_bytes = int(self.config.max_file_mb * 1024 * 1024)
        seen: set[str] = set()
        for key, f in enumerate(files):
            if f.refused:
                yield LoadResult.failed(key, f.source, f.refused)
                continue
            if f.source in seen:
                yield LoadResult.failed(key, f.source, "skipped: another path argument has a file with the same source")
                continue
            seen.add(f.source)
            try:
                data = read_file(f.path, f.source, max_bytes)
            except LoaderError as e:
                yield LoadResult.failed(key, f.source, e.reason)
                continue
            old = known.get(f.source)
            if old is not None and old.doc_hash == sha256_hex(data):
                yield LoadResult(key, f.source, "unchanged")
                continue
            yield LoadTask(key, f.source, f.path.name, data, tenant, tags)

    def _commit(self, coll: IndexWriter, pending: list[tuple[Found, Document, list[Chunk]]], rep: IngestReport,
                tenant: str | None, tags: tuple[str, ...], tag_changes: list[str]) -> None:
        dim = coll.manifest.dim if coll.manifest else self.embedder.dim
        self._progress("commit", 0, 1)
        removed_ids: list[int] = []
        added_ids: list[int] = []
        with coll.changes(self.config, self._embedder, dim) as tx:  # one transaction: the next generation
            for src in [*rep.removed, *(d.source for _, d, _ in pending if d.source in rep.updated)]:
                removed_ids.extend(tx.delete_document(src, tenant))
            for f, doc, chunks in pending:
                added_ids.extend(tx.add_document(doc, str(f.path), str(f.root), chunks, tenant, tags))
            for src in tag_changes:
                tx.set_tags(src, tenant, tags)
        rep.chunks_added = len(added_ids)
        rep.chunks_removed = len(removed_ids)
        self._progress("commit", 1, 1)

    def _finish(self, rep: IngestReport, coll: IndexWriter, t0: float, t_embed: float = 0.0) -> IngestReport:
        rep.seconds = time.perf_counter() - t0
        rep.embed_seconds = t_embed
        rep.chunks_total = coll.count("chunks")
        rep.documents_total = coll.count("documents")
        rep.generation = coll.generation
        return rep


class _VectorCache:
    """Embeds chunk texts that have no stored vector, a batch at a time as parsed files arrive; each batch is
    committed at once, so a crash keeps what was embedded."""

    def __init__(self, store: IndexWriter, embed: Callable[[list[str]], np.ndarray], progress: Progress,
                 batch: int = EMBED_BATCH) -> None:
        self._store, self._embed, self._progress, self._batch_size = store, embed, progress, batch
        self._seen: set[str] = set()
        self._todo: dict[str, str] = {}
        self.embedded = 0
        self.seconds = 0.0

    def add(self, chunks: list[Chunk], idle: bool = False) -> None:
        self.add_texts({c.text_hash: c.text for c in chunks}, idle)

    def add_texts(self, texts: dict[str, str], idle: bool = False) -> None:
        """Texts to embed, by hash. `idle`: nothing else is waiting for this thread, so up to a batch is embedded now
        (once IDLE_BATCH texts wait) rather than buffered (the buffer sorts more texts by length: less padding)."""
        new = {h: t for h, t in texts.items() if h not in self._seen}
        if new:
            self._seen.update(new)
            have = self._store.cached_vectors(new)
            self._todo.update((h, t) for h, t in new.items() if h not in have)
        while len(self._todo) >= self._batch_size * EMBED_BUFFER_BATCHES:
            self._batch()
        if idle and len(self._todo) >= min(IDLE_BATCH, self._batch_size):
            self._batch()

    def flush(self) -> None:
        while self._todo:
            self._batch()

    def _batch(self) -> None:
        # Longest first, as sentence-transformers pads each batch to its longest text.
        batch = sorted(self._todo.items(), key=lambda ht: -len(ht[1]))[:self._batch_size]
        self._progress("embed", self.embedded, self.embedded + len(self._todo))
        t = time.perf_counter()
        vecs = self._embed([text for _, text in batch])
        self.seconds += time.perf_counter() - t
        self._store.put_vectors([h for h, _ in batch], vecs)  # committed at once
        for h, _ in batch:
            del self._todo[h]
        self.embedded += len(batch)
        self._progress("embed", self.embedded, self.embedded + len(self._todo))



def ingest_paths(paths: list[Path], index_dir: IndexTarget | str, config: IngestConfig, *, prune: bool = False,
                 tenant: str | None = None, tags: tuple[str, ...] = (), embedder: Embedder | None = None,
                 progress: Progress | None = None, remove: list[str] | None = None,
                 lock_timeout: float = 0.0, executor: Executor | None = None) -> IngestReport:
    """Ingest files and folders into the index at `index_dir` (a directory, created if needed, or a
    PostgresTarget); `lock_timeout`: seconds to wait for another writer before IndexLockedError. `executor`: where
    files are parsed and texts embedded (default: the one `config.executor` names; this process always commits)."""
    executor = executor if executor is not None else open_executor(config)
    return Ingestor(index_dir, config, embedder=embedder, progress=progress, lock_timeout=lock_timeout,
                    executor=executor).run(paths, prune=prune, tenant=tenant, tags=tags, remove=remove)


def repair(index_dir: Path) -> list[str]:
    """Finish what an interrupted ingest left behind (a stale manifest.json, files of an uncommitted generation),
    unless an ingest is running now; returns what was done. Never waits, never fails on a read-only index."""
    index_dir = Path(index_dir)
    if not (index_dir / STORE_FILE).is_file():
        return []
    lock = FileLock(str(index_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        return []  # a writer is at work (it repairs when it commits), or the folder is not ours to write
    try:
        coll = Collection(index_dir, readonly=False)
        try:
            done: list[str] = []
            problem = coll.manifest_file_problem()
            if problem:
                coll.repair_manifest_file()
                done.append(f"rewrote manifest.json for generation {coll.generation} ({problem.split(' (')[0]})")
            stale = coll.stale_files()
            if stale:
                coll.remove_stale_files()
                done.append(f"removed {len(stale)} file(s) of an uncommitted or replaced generation")
            for line in done:
                log.warning("%s: %s", index_dir, line)
            return done
        finally:
            coll.close()
    except OSError as e:
        log.warning("%s: cannot repair the index (%s)", index_dir, e)
        return []
    finally:
        lock.release()
