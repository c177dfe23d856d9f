"""Fixtures shared by every test package: an offline environment, the embedding model loaded once, the CLI.

Tests use real parts (files in tmp_path, the bundled model, FAISS and SQLite on disk); what is expensive
(loading the model, ~5 s) is done once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

# Before anything imports torch or transformers: no network, and no OpenMP busy-waiting on a 2-core machine.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false",
}
for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session")
def embedder():
    """The real bundled embedding model, loaded once; pass it as `embedder=` to skip reloading."""
    from ingest.config import EmbeddingConfig
    from ingest.embedding import open_embedder

    return open_embedder(EmbeddingConfig())


@dataclass(frozen=True)
class RagCli:
    """Runs the installed `rag` command in a subprocess, in a folder without a config.toml (built-in defaults)."""

    cwd: Path

    @property
    def argv(self) -> list[str]:
        script = Path(sys.executable).with_name("rag")
        if script.exists():
            return [str(script)]
        found = shutil.which("rag")
        return [found] if found else [sys.executable, "-m", "rag.cli"]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **OFFLINE_ENV}

    def run(self, args: Sequence[str | os.PathLike[str]], timeout: float = 120, extra_env: dict[str, str] | None = None,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *map(str, args)], cwd=self.cwd, env={**self.env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=timeout, check=False, **kwargs)

    def popen(self, args: Sequence[str | os.PathLike[str]], extra_env: dict[str, str] | None = None,
              **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.argv, *map(str, args)], cwd=self.cwd, env={**self.env, **(extra_env or {})},
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.fixture(scope="session")
def rag_cli(tmp_path_factory: pytest.TempPathFactory) -> RagCli:
    """The `rag` command line, run as a real subprocess."""
    return RagCli(cwd=tmp_path_factory.mktemp("cwd"))


# --- index backends: every retrieval, tenant and crash test runs on both (tests/index_backends.py) ---------------

from index_backends import BACKENDS, PG_DSN_ENV, PgServer, in_ci, pg_target  # noqa: E402


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """Starts PostgreSQL once (about a second), creates a login role `rag_app` (CREATEROLE, not a superuser) and
    its database with pgvector enabled, and exports its DSN as $RAG_PG_DSN for the code under test and the
    processes it starts. Missing PostgreSQL fails in CI and skips elsewhere."""
    # pgserver asks platformdirs for a runtime folder, which warns on machines without one (CI): give it ours.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
    try:
        import pgserver
        import psycopg
    except ImportError as e:
        message = f"PostgreSQL tests need pgserver and psycopg (pip install -e '.[test]'): {e}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("pgdata")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(folder, cleanup_mode="stop")
        admin = server.get_uri()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE ROLE rag_app LOGIN CREATEROLE")
            conn.execute("CREATE DATABASE rag OWNER rag_app")
        database = admin.replace("/postgres?", "/rag?", 1)
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
    except Exception as e:
        if in_ci():
            pytest.fail(f"PostgreSQL could not be started for the tests: {e}")
        pytest.skip(f"PostgreSQL could not be started: {e}")
    app = database.replace("postgres:@", "rag_app:@", 1)
    previous = os.environ.get(PG_DSN_ENV)
    os.environ[PG_DSN_ENV] = app
    try:
        yield PgServer(admin_dsn=database, dsn=app)
    finally:
        if previous is None:
            os.environ.pop(PG_DSN_ENV, None)
        else:
            os.environ[PG_DSN_ENV] = previous
        server.cleanup()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The index backend under test; a postgres test starts the session's PostgreSQL."""
    if request.param == "postgres":
        request.getfixturevalue("postgres")
    return request.param


@pytest.fixture
def new_index(backend: str, tmp_path: Path):  # noqa: ANN201 - the function below
    """`new_index(name)`: a fresh, empty index of the backend under test (a directory, or a PostgreSQL schema)."""

    def make(name: str = "index"):  # noqa: ANN202
        return tmp_path / name if backend == "embedded" else pg_target(name)

    return make
