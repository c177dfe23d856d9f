"""`rag migrate --from DIR --to postgres`: an embedded index copied into PostgreSQL with its vectors (the model is
never loaded), its keys and audit log, then checked against its source; a copy that differs is reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from index_backends import pg_target

from ingest.backend import PostgresTarget
from rag.access import AccessStore
from rag.api import open_pipeline
from rag.config import Config

pytestmark = [pytest.mark.slow]


def test_migrate_copies_an_embedded_index_and_checks_the_copy(postgres, mixed_index: Path, tmp_path: Path, rag_cli,
                                                               embedder) -> None:
    source = Path(shutil.copytree(mixed_index, tmp_path / "index"))
    access = AccessStore(source)
    key = access.create_key("reader of food", "reader", ["food"])
    access.record("POST /v1/ask", key.key.id, 200, question="How long does the bread rise?", sources=["kitchen.html"])
    access.close()
    target = pg_target("migrated")

    env = {"HF_HUB_OFFLINE": "1", "RAG_EMBEDDING__MODEL": "/nonexistent/model"}  # nothing may load a model
    out = rag_cli.run(["migrate", "--from", source, "--to", "postgres", "--schema", target.schema, "--json"],
                      extra_env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["problems"] == [] and report["target"] == f"postgres:{target.schema}"
    assert (report["documents"], report["keys"], report["audit_rows"]) == (3, 1, 1) and report["chunks"] >= 3
    checks = " | ".join(report["checks"])
    for part in ("documents: 3 in the source, 3 in the copy", "chunk ids: identical", "vectors of",
                 "same best hit", "documents (tenant, source, content hash): identical"):
        assert part in checks, checks

    # The copy answers like its source, for the same tenants, and the key works against it.
    question = "How long does sourdough bread rise?"
    with open_pipeline(mixed_index, Config(), embedder=embedder) as r:
        want = [(h.chunk.chunk_id, round(h.score, 4)) for h in r.retrieve(question, k=3, mode="dense", tenants=("food",))]
    with open_pipeline(target, Config(), embedder=embedder) as r:
        got = [(h.chunk.chunk_id, round(h.score, 4)) for h in r.retrieve(question, k=3, mode="dense", tenants=("food",))]
        assert r.retrieve(question, k=3, tenants=("nobody",)) == []
    assert got == want
    from rag.access.postgres import PgAccessStore

    pg_access = PgAccessStore(target)
    try:
        assert pg_access.authenticate(key.token).tenants == ("food",)
        assert pg_access.audit()[0].question == "How long does the bread rise?"
    finally:
        pg_access.close()

    # Once more into the same schema: refused, nothing touched.
    again = rag_cli.run(["migrate", "--from", source, "--to", "postgres", "--schema", target.schema], extra_env=env)
    assert again.returncode == 1 and "is not empty" in again.stderr


def test_a_copy_that_differs_from_its_source_is_reported(postgres, mixed_index: Path, monkeypatch) -> None:
    from ingest.pg.connect import connect
    from rag.migrate import migrate, verify

    target = pg_target("tampered")
    assert migrate(mixed_index, target).ok
    monkeypatch.setenv("RAG_PG_ADMIN_DSN", postgres.admin_dsn)
    admin = connect(PostgresTarget(dsn_env="RAG_PG_ADMIN_DSN", schema=target.schema))
    try:
        admin.execute("UPDATE chunks SET embedding = (SELECT embedding FROM chunks ORDER BY id LIMIT 1)")
        admin.execute("UPDATE documents SET doc_hash = 'x' WHERE source = 'notes.txt'")
    finally:
        admin.close()
    checks, problems = verify(mixed_index, target)
    assert any(p.startswith("vectors of") for p in problems), problems
    assert "documents (tenant, source, content hash): differ" in problems
