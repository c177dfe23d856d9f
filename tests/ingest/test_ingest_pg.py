"""The postgres backend's own guarantees: row-level security by tenant (a query that forgets its filter still reads
only its tenants' rows), the DSN read from the variable the config names and never shown, SQLite GLOB semantics
for filters, and filters applied inside the vector search. (The retrieval, index and tenant tests run on both
backends in their own files: test_ingest_index.py, test_ingest_security.py's prune test, tests/rag/test_retrieve.py,
tests/rag/test_tenant_snapshot.py, and the server's tenant, key and campaign tests through `tenant_server` and the
`backend` fixture. Crash points are each backend's own: test_ingest_crash.py and test_ingest_kill_campaign.py for
the embedded commit, test_ingest_pg_crash.py for PostgreSQL's transaction.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from index_backends import backend_env, pg_target

from ingest.backend import PostgresTarget, open_index
from ingest.config import ConfigError, IngestConfig
from ingest.pg import index as pg_index
from ingest.pg.connect import PostgresError, connect
from ingest.pg.query import glob_regex
from ingest.pipeline import ingest_paths
from ingest.store import ChunkFilter

pytestmark = [pytest.mark.slow]

DOCS = {
    "a": {"alpha.md": "# Alpha\n\nThe alpha ledger code is AX-7731. Tenant a keeps the falcon ledger.\n"},
    "b": {"beta.md": "# Beta\n\nThe beta ledger code is BX-4420. Tenant b keeps the falcon ledger.\n"},
    None: {"shared.md": "# Shared\n\nThe untenanted falcon ledger belongs to nobody in particular.\n"},
}


@pytest.fixture
def tenants_index(postgres, tmp_path: Path, hash_embedder) -> PostgresTarget:
    target = pg_target("rls")
    for tenant, files in DOCS.items():
        folder = tmp_path / f"docs-{tenant}"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        ingest_paths([folder], target, IngestConfig(), embedder=hash_embedder, tenant=tenant)
    return target


def test_a_query_that_forgets_the_filter_reads_only_its_tenants_rows(tenants_index: PostgresTarget, hash_embedder,
                                                                      postgres, monkeypatch) -> None:
    index = open_index(tenants_index)
    try:
        with index.snapshot(("a",)) as view:
            db = view.conn
            # Raw SQL with no WHERE clause at all: the policy is what stops it.
            assert {r[0] for r in db.execute("SELECT tenant FROM chunks").fetchall()} == {"a"}
            assert [r[0] for r in db.execute("SELECT source FROM documents").fetchall()] == ["alpha.md"]
            all_ids = [r[0] for r in db.execute("SELECT id FROM chunks").fetchall()]
            # The backend's own reads, with an empty filter (no tenant restriction asked for).
            assert {c.tenant for c in view.chunks(range(1, 1000)).values()} == {"a"}
            assert [d.source for d in view.documents()] == ["alpha.md"]
            q = hash_embedder.embed(["falcon ledger"])
            assert {int(i) for i, _ in view.dense_search(q, 10, ChunkFilter())} <= set(all_ids)
            hits = view.keyword_search('"falcon" OR "ledger"', 10, ChunkFilter())
            assert hits and {i for i, _ in hits} <= set(all_ids)
        with pytest.raises(Exception, match="read-only|permission denied"), index.snapshot(("a",)) as view:
            view.conn.execute("DELETE FROM chunks")  # reads cannot write
        with index.snapshot(()) as view:
            assert view.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
        with index.snapshot(None) as view:  # every tenant, and the documents without one
            assert {r[0] for r in view.conn.execute("SELECT tenant FROM documents").fetchall()} == {"a", "b", None}
        assert index.consistency() == []
    finally:
        index.close()

    # The tables' owner (the application's login role) reads nothing without a tenant setting: FORCE applies
    # the policy to the owner too.
    owner = connect(tenants_index)
    try:
        assert owner.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
        assert owner.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
    finally:
        owner.close()

    # Even over a superuser's connection (which bypasses row-level security), reads run as the read-only role.
    monkeypatch.setenv("RAG_PG_ADMIN_DSN", postgres.admin_dsn)
    as_admin = open_index(PostgresTarget(dsn_env="RAG_PG_ADMIN_DSN", schema=tenants_index.schema))
    try:
        with as_admin.snapshot(("b",)) as view:
            assert {r[0] for r in view.conn.execute("SELECT tenant FROM chunks").fetchall()} == {"b"}
    finally:
        as_admin.close()

    # Switched off by an administrator: rag stats says so.
    admin = connect(PostgresTarget(dsn_env="RAG_PG_ADMIN_DSN", schema=tenants_index.schema))
    try:
        admin.execute("ALTER TABLE chunks NO FORCE ROW LEVEL SECURITY")
    finally:
        admin.close()
    index = open_index(tenants_index)
    try:
        assert index.consistency() == ["row-level security is off on chunks"]
    finally:
        index.close()


def test_the_dsn_comes_from_the_named_variable_and_is_never_shown(postgres, monkeypatch, rag_cli,
                                                                   tenants_index: PostgresTarget) -> None:
    monkeypatch.delenv("RAG_TEST_MISSING_DSN", raising=False)
    with pytest.raises(ConfigError, match="environment variable RAG_TEST_MISSING_DSN .index.dsn_env., which is not set"):
        open_index(PostgresTarget(dsn_env="RAG_TEST_MISSING_DSN", schema="whatever"))
    secret = "hunter2-not-to-be-shown"
    bad = postgres.dsn.replace("rag_app:@", f"rag_app:{secret}@").replace("/rag?", "/no_such_database?")
    monkeypatch.setenv("RAG_TEST_BAD_DSN", bad)
    with pytest.raises(PostgresError) as e:
        open_index(PostgresTarget(dsn_env="RAG_TEST_BAD_DSN", schema="whatever"))
    assert "RAG_TEST_BAD_DSN" in str(e.value) and secret not in str(e.value) and bad not in str(e.value)
    # The command line: verbose logs, JSON output and errors name the variable, never its value.
    env = backend_env(tenants_index)
    out = rag_cli.run(["-vv", "stats", "--json"], extra_env=env)
    assert out.returncode == 0 and '"documents": 3' in out.stdout, out.stderr
    assert postgres.dsn not in out.stdout + out.stderr
    out = rag_cli.run(["stats"], extra_env={**env, "RAG_INDEX__DSN_ENV": "RAG_TEST_BAD_DSN", "RAG_TEST_BAD_DSN": bad})
    assert out.returncode == 1 and "RAG_TEST_BAD_DSN" in out.stderr and secret not in out.stderr + out.stdout


GLOBS = ["*.md", "a*", "*/notes.txt", "docs/?.txt", "[ab]*", "[^ab]*", "*[0-9].pdf", "x[.]y", "a.b", "*+*",
         "(x)*", "\\*", "*$", "[]]x", "*.MD", "ä*", "[", "**/*.md"]
NAMES = ["a.md", "b.md", "c.md", "docs/a.txt", "docs/ab.txt", "x/notes.txt", "notes.txt", "file1.pdf", "filea.pdf",
         "x.y", "xzy", "a.b", "axb", "a+b", "(x)z", "\\*", "*", "q$", "]x", "A.MD", "äpfel.md", "[", "d/e/f.md"]


def test_glob_filters_match_what_sqlite_glob_matches(postgres) -> None:
    import psycopg

    lite = sqlite3.connect(":memory:")
    with psycopg.connect(postgres.dsn) as pg:
        for pattern in GLOBS:
            want = {n for n in NAMES if lite.execute("SELECT ? GLOB ?", (n, pattern)).fetchone()[0]}
            regex = glob_regex(pattern)
            got = {n for n in NAMES if pg.execute("SELECT %s ~ %s", (n, regex)).fetchone()[0]}
            assert got == want, (pattern, regex)


def test_filters_apply_inside_the_vector_search_on_both_plans(postgres, tmp_path: Path, hash_embedder,
                                                             monkeypatch) -> None:
    """A filter admitting few chunks is searched exactly; a broad one through the HNSW index with enough
    candidates; either way k hits come back when k chunks are admitted, and they are the admitted nearest."""
    target = pg_target("plans")
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(40):
        (folder / f"{'keep' if i % 4 == 0 else 'other'}{i:02d}.txt").write_text(f"Document {i} of forty, line {i}.\n")
    ingest_paths([folder], target, IngestConfig(), embedder=hash_embedder)
    index = open_index(target)
    try:
        q = hash_embedder.embed(["a question"])
        for exact_max in (pg_index.EXACT_MAX, 0):  # 0: the HNSW plan even for a selective filter
            monkeypatch.setattr(pg_index, "EXACT_MAX", exact_max)
            with index.snapshot() as view:
                flt = ChunkFilter(sources=("keep*",))
                hits = view.dense_search(q, 5, flt)
                chunks = view.chunks([i for i, _ in hits])
                assert len(hits) == 5 and all(c.source.startswith("keep") for c in chunks.values())
                ids = view.chunk_ids_where(flt).tolist()
                vecs = view.vectors_for_chunks(ids, 384)
                best = [ids[j] for j in np.argsort(-(vecs @ q[0]))[:5]]
                assert [i for i, _ in hits] == best, exact_max
                assert view.dense_search(q, 5, ChunkFilter(sources=("nothing*",))) == []
    finally:
        index.close()


def test_keyword_filters_apply_inside_the_ranked_query(postgres, tmp_path: Path, hash_embedder) -> None:
    """k=1 for the tenant whose chunk does not rank first still finds that tenant's chunk, by the filter inside the
    ranked query alone (the snapshot itself may read every tenant), and no other row by row-level security."""
    target = pg_target("keyword")
    a_text = "The rare falcon nests here. " + " ".join(f"cliff{i} coast{i}" for i in range(60)) + "."
    for tenant, text in (("a", a_text), ("b", "Rare, rare, rare: the rare falcon. " * 3)):
        folder = tmp_path / tenant
        folder.mkdir()
        for i in range(5 if tenant == "b" else 1):
            (folder / f"{tenant}{i}.txt").write_text(f"{text} Copy {i}.\n")
        ingest_paths([folder], target, IngestConfig(), embedder=hash_embedder, tenant=tenant)
    index = open_index(target)
    try:
        with index.snapshot(None) as view:
            ranked = view.keyword_search('"rare"', 10, ChunkFilter())
            assert sorted(view.chunks([i])[i].tenant for i, _ in ranked) == ["a"] + ["b"] * 5
            first = view.chunks([ranked[0][0]])[ranked[0][0]].tenant
            other = "b" if first == "a" else "a"
            only = view.keyword_search('"rare"', 1, ChunkFilter(tenants=(other,)))
            assert [view.chunks([i])[i].tenant for i, _ in only] == [other]
            scores = [s for _, s in view.keyword_search('"rare" OR "falcon"', 10, ChunkFilter())]
            assert scores == sorted(scores, reverse=True) and scores[-1] > 0
        with index.snapshot(("a",)) as view:  # the policy alone, with no filter given
            assert {view.chunks([i])[i].tenant for i, _ in view.keyword_search('"rare"', 10, ChunkFilter())} == {"a"}
    finally:
        index.close()
