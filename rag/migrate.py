"""`rag migrate`: an embedded index (a directory) copied into PostgreSQL, then checked against its source.

The copy (ingest.pg.copy) takes documents, chunks with their ids and provenance, and their vectors as stored: nothing
is embedded again. The API keys (by their hashes: the same tokens keep working) and the audit log come along. The
check compares counts, ids and hashes, a sample of vectors, and the top hits of dense retrieval for sampled queries.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.backend import PostgresTarget, open_index
from ingest.collection import Collection
from ingest.store import ChunkFilter

SAMPLE = 64  # vectors compared one by one
QUERIES = 16  # dense queries whose top hits must agree
TOP = 10
FULL_COMPARE = 100_000  # chunks compared field by field (all of them up to this many, else a sample this size)


@dataclass(frozen=True)
class MigrationReport:
    source: str
    target: str
    documents: int
    chunks: int
    vectors: int
    keys: int
    audit_rows: int
    checks: tuple[str, ...]  # what was verified, one line each
    problems: tuple[str, ...]  # what did not match (empty: the copy is faithful)
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


def migrate(source: str | Path, target: PostgresTarget, *, hnsw_m: int = 32, seed: int = 0,
            progress: Any = None) -> MigrationReport:
    """Copy the index directory `source` into the empty PostgreSQL schema of `target` and check the copy."""
    from ingest.pg.copy import copy_embedded

    t0 = time.perf_counter()
    source = Path(source)
    copied = copy_embedded(source, target, hnsw_m=hnsw_m, progress=progress)
    keys, audit_rows = _copy_access(source, target)
    checks, problems = verify(source, target, seed=seed)
    return MigrationReport(str(source), str(target), copied.documents, copied.chunks, copied.vectors, keys,
                           audit_rows, tuple(checks), tuple(problems), time.perf_counter() - t0)


def _copy_access(source: Path, target: PostgresTarget) -> tuple[int, int]:
    """API keys (hashes, roles, tenants, revocations) and the audit log, when the source has them."""
    from rag.access.postgres import open_shared

    coll = Collection(source)
    pg = open_shared(target, "rag-migrate")
    try:
        db = coll.store.db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "api_keys" not in tables:
            return 0, 0
        keys = db.execute("SELECT id, name, key_hash, role, tenants, created_at, revoked_at FROM api_keys").fetchall()
        audit = db.execute("SELECT at, key_id, route, question, sources, refused, status FROM audit ORDER BY id").fetchall()
        with pg.transaction(), pg.cursor() as cur:
            cur.executemany("INSERT INTO api_keys(id, name, key_hash, role, tenants, created_at, revoked_at) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                            [(k[0], k[1], k[2], k[3], json.loads(k[4]), k[5], k[6]) for k in keys])
            cur.executemany("INSERT INTO audit(at, key_id, route, question, sources, refused, status) "
                            "VALUES (%s, %s, %s, %s, %s, %s::int::boolean, %s)",
                            [tuple(_text(v) for v in row) for row in audit])
        return len(keys), len(audit)
    finally:
        pg.close()
        coll.close()


def _text(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def verify(source: Path, target: PostgresTarget, seed: int = 0) -> tuple[list[str], list[str]]:
    """(checks made, problems found) comparing the index directory with its copy."""
    checks: list[str] = []
    problems: list[str] = []
    src = Collection(Path(source))
    dst = open_index(target)
    try:
        with src.snapshot() as a, dst.snapshot() as b:
            for table in ("documents", "chunks", "vectors"):
                na, nb = a.count(table), b.count(table)
                (checks if na == nb else problems).append(f"{table}: {na} in the source, {nb} in the copy")
            docs_a = {(d.tenant, d.source): d.doc_hash for d in a.documents()}
            docs_b = {(d.tenant, d.source): d.doc_hash for d in b.documents()}
            _same(checks, problems, "documents (tenant, source, content hash)", docs_a, docs_b)
            ids = sorted(int(i) for i in a.chunk_ids_where(ChunkFilter()))
            _same(checks, problems, "chunk ids", ids, sorted(int(i) for i in b.chunk_ids_where(ChunkFilter())))
            rnd = random.Random(seed)
            compared = ids if len(ids) <= FULL_COMPARE else sorted(rnd.sample(ids, FULL_COMPARE))
            ca, cb = a.chunks(compared), b.chunks(compared)
            diff = [i for i in compared if ca.get(i) != cb.get(i)]
            (problems if diff else checks).append(
                f"chunks with their text, hashes and provenance: {len(compared) - len(diff)} of {len(compared)} "
                + ("identical" if len(compared) == len(ids) else "sampled identical")
                + (f" (first differing id {diff[0]})" if diff else ""))
            m = src.manifest
            if m is not None and ids:
                sample = sorted(rnd.sample(ids, min(SAMPLE, len(ids))))
                va, vb = a.vectors_for_chunks(sample, m.dim), b.vectors_for_chunks(sample, m.dim)
                worst = float(np.abs(va - vb).max())
                (checks if worst <= 1e-6 else problems).append(
                    f"vectors of {len(sample)} sampled chunks: largest difference {worst:.1e}")
                _same_hits(a, b, va[:QUERIES], checks, problems)
    finally:
        dst.close()
        src.close()
    return checks, problems


def _same(checks: list[str], problems: list[str], what: str, a: Any, b: Any) -> None:
    (checks if a == b else problems).append(f"{what}: " + ("identical" if a == b else "differ"))


def _same_hits(a: Any, b: Any, queries: np.ndarray, checks: list[str], problems: list[str]) -> None:
    """Dense retrieval with sampled chunks' vectors as queries: the same best hit, and the same top ten up to the
    approximation of pgvector's HNSW (at least 9 of 10 in common on average)."""
    firsts, overlap = 0, 0.0
    for q in queries:
        ha = [i for i, _ in a.dense_search(q[None, :], TOP, ChunkFilter())]
        hb = [i for i, _ in b.dense_search(q[None, :], TOP, ChunkFilter())]
        firsts += bool(ha and hb and ha[0] == hb[0])
        overlap += len(set(ha) & set(hb)) / max(1, len(ha))
    n = len(queries)
    line = f"dense retrieval, {n} queries: same best hit {firsts}/{n}, top-{TOP} overlap {overlap / n:.2f}"
    (checks if firsts == n and overlap / n >= 0.9 else problems).append(line)
