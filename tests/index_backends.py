"""Both index backends in tests: names, a fresh PostgreSQL schema per index, the `rag` command pointed at one."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

BACKENDS = ("embedded", "postgres")
PG_DSN_ENV = "RAG_PG_DSN"  # the variable the postgres tests' configs name (index.dsn_env)

_schemas = itertools.count(1)


def in_ci() -> bool:
    """CI is set (to anything but '', 0, false or no) where the suite runs unattended."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL 16 server with pgvector (PyPI's pgserver) on a Unix socket, for this test session."""

    admin_dsn: str  # the superuser, on the tests' database (for what only an administrator may do)
    dsn: str  # the application's role: not a superuser, owner of the database it ingests into


def pg_target(name: str = "index"):  # noqa: ANN201 - ingest.backend.PostgresTarget
    """A fresh schema (an empty index) in the session's database."""
    from ingest.backend import PostgresTarget

    clean = "".join(c if c.isalnum() else "_" for c in name.lower())[:20]
    return PostgresTarget(dsn_env=PG_DSN_ENV, schema=f"t{next(_schemas)}_{clean}_{os.getpid() % 10000}")


def backend_env(target: object) -> dict[str, str]:
    """RAG_* variables that point the `rag` command at a postgres index (none for an index directory)."""
    from ingest.backend import PostgresTarget

    if not isinstance(target, PostgresTarget):
        return {}
    return {"RAG_INDEX__BACKEND": "postgres", "RAG_INDEX__DSN_ENV": target.dsn_env,
            "RAG_INDEX__PG_SCHEMA": target.schema}


def index_args(target: object) -> list[str]:
    """`--index DIR` for an index directory; nothing for a postgres index (backend_env names it)."""
    from ingest.backend import PostgresTarget

    return [] if isinstance(target, PostgresTarget) else ["--index", str(target)]
