"""GET /readyz, for load balancers: 200 with the backend and the chunk count while the index can be read, 503 with
the reason once it cannot (the index folder gone, the database stopped); no key needed, no tenant data shown.
/healthz stays liveness: it answers whatever happens to the index."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from rag import api

pytestmark = pytest.mark.slow  # the real embedder opens the index (loaded once per session)


def test_readyz_follows_the_index_folder(app_copy: Path, make_app) -> None:  # noqa: ANN001
    chunks = api.stats(app_copy).chunks
    assert chunks > 0
    with make_app(app_copy) as ip:
        r = ip.client.get("/readyz")  # no key
        assert r.status_code == 200 and r.json() == {"status": "ready", "index": "embedded", "chunks": chunks}

        store = app_copy / "store.sqlite"
        store.rename(app_copy / "store.sqlite.away")  # the app's own connections still read the moved file
        r = ip.client.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json() == {"status": "unavailable", "index": "embedded", "reason": "the index store cannot be read"}
        (app_copy / "store.sqlite.away").rename(store)
        assert ip.client.get("/readyz").status_code == 200  # back once the store is

        shutil.rmtree(app_copy)
        r = ip.client.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json() == {"status": "unavailable", "index": "embedded", "reason": "the index folder is missing"}
        assert str(app_copy) not in r.text  # the details go to the log, not to an unauthenticated caller
        assert ip.client.get("/healthz").json() == {"status": "ok"}  # liveness is not readiness


def test_readyz_follows_the_database(tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """A PostgreSQL of this test's own (the session's is shared by other tests), stopped under the running app."""
    pgserver = pytest.importorskip("pgserver")
    psycopg = pytest.importorskip("psycopg")
    from fastapi.testclient import TestClient

    from ingest.backend import PostgresTarget
    from rag.access import AccessStore
    from rag.config import Config
    from rag.server import create_app

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # pgserver wants a runtime folder (CI has none)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tmp_path / "pgdata", cleanup_mode="stop")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE readyz")
        dsn = server.get_uri("readyz")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        monkeypatch.setenv("RAG_READYZ_DSN", dsn)
        target = PostgresTarget(dsn_env="RAG_READYZ_DSN", schema="readyz")
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "fish.md").write_text("# Zebrafish\n\nThe zebrafish aquarium is kept at 28 degrees Celsius.\n")
        (docs / "rock.md").write_text("# Basalt\n\nBasalt columns are cut with diamond wire saws.\n")
        report = api.ingest([docs], target, Config(), tenant="A", embedder=embedder)
        access = AccessStore(tmp_path / "local")
        rag = api.open_pipeline(target, Config().with_overrides(**{"answer.llm": "extractive"}), embedder=embedder)
        try:
            with TestClient(create_app(rag, access), raise_server_exceptions=False) as client:
                r = client.get("/readyz")
                assert r.status_code == 200, r.text
                assert r.json() == {"status": "ready", "index": "postgres", "chunks": report.chunks_total}

                server.cleanup()  # PostgreSQL stops: the app's open connections break, new ones are refused
                for _ in range(2):  # the broken connection first, then a fresh one that cannot connect
                    r = client.get("/readyz")
                    assert r.status_code == 503, r.text
                    assert r.json() == {"status": "unavailable", "index": "postgres",
                                        "reason": "the database is unreachable"}
                    assert dsn not in r.text
                assert client.get("/healthz").status_code == 200
        finally:
            rag.close()
            access.close()
    finally:
        server.cleanup()  # a no-op once stopped
