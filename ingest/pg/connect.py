"""Connections to PostgreSQL: psycopg imported here (never by the embedded backend), the DSN read from the
environment variable the config names (never stored, never logged: it is scrubbed from error messages), and
schema migrations applied once, under an advisory lock, whichever process opens the index first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ingest.backend import PostgresTarget
from ingest.errors import IngestError

log = logging.getLogger(__name__)

Step = str | Callable[[Any], None]  # SQL (formatted with {s}: the schema, {reader}: the read-only role) or a function


class PostgresError(IngestError):
    """PostgreSQL cannot be reached, or lacks something the postgres backend needs; the message says what to do."""


def psycopg_module() -> Any:
    try:
        import psycopg
    except ImportError as e:
        raise PostgresError('index.backend = "postgres" needs psycopg: pip install "rag[postgres]"') from e
    return psycopg


def reader_role(target: PostgresTarget) -> str:
    """The role every read snapshot runs as: SELECT only, never the tables' owner, row-level security applies."""
    return f"{target.schema}_reader"


def scrub(message: str, dsn: str) -> str:
    """An error message with the connection string and its password taken out."""
    secrets = [dsn]
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(dsn).get("password")
        if password:
            secrets.append(str(password))
    except Exception:  # an unparsable DSN: only the whole string is removed
        pass
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message.strip()


def connect(target: PostgresTarget, application: str = "rag") -> Any:
    """An autocommit connection whose search_path is the index's schema (then public, where pgvector lives)."""
    pg = psycopg_module()
    dsn = target.dsn()
    try:
        conn = pg.connect(dsn, autocommit=True, connect_timeout=10, application_name=application)
    except pg.Error as e:
        raise PostgresError(f"cannot connect to PostgreSQL for index {target} (connection string from the environment "
                            f"variable {target.dsn_env}): {scrub(str(e), dsn)}") from None
    conn.execute(f'SET search_path = "{target.schema}", public')
    return conn


def migrate(conn: Any, target: PostgresTarget, component: str, steps: Sequence[Step]) -> int:
    """Apply the steps of `component` after its stored version, in one transaction under an advisory lock (many
    replicas may start at once); returns the version."""
    names = {"s": f'"{target.schema}"', "reader": f'"{reader_role(target)}"'}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"rag-migrate:{target.schema}",))
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"')
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{target.schema}".schema_versions '
                     "(component text PRIMARY KEY, version integer NOT NULL)")
        row = conn.execute(f'SELECT version FROM "{target.schema}".schema_versions WHERE component = %s',
                           (component,)).fetchone()
        version = int(row[0]) if row else 0
        for number, step in enumerate(steps, start=1):
            if number <= version:
                continue
            if callable(step):
                step(conn)
            else:
                conn.execute(step.format(**names))
            version = number
        conn.execute(f'INSERT INTO "{target.schema}".schema_versions(component, version) VALUES (%s, %s) '
                     "ON CONFLICT (component) DO UPDATE SET version = excluded.version", (component, version))
    return version


def schema_version(conn: Any, target: PostgresTarget, component: str) -> int:
    row = conn.execute(f'SELECT version FROM "{target.schema}".schema_versions WHERE component = %s',
                       (component,)).fetchone()
    return int(row[0]) if row else 0


def ensure_vector_extension(conn: Any) -> None:
    """pgvector in this database: created when missing (which needs a superuser, or the database's owner on a
    server where pgvector is trusted)."""
    pg = psycopg_module()
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except pg.errors.InsufficientPrivilege:
        raise PostgresError("pgvector is not enabled in this database and this role may not enable it: run "
                            "`CREATE EXTENSION vector;` in the database as a superuser") from None
    except pg.Error as e:
        raise PostgresError(f"pgvector cannot be enabled ({str(e).strip()}): install pgvector on the PostgreSQL "
                            "server (https://github.com/pgvector/pgvector), then `CREATE EXTENSION vector;`") from None


def ensure_reader_role(target: PostgresTarget) -> Step:
    """A step creating the read-only role of the index (NOLOGIN) and letting the connecting role SET it."""
    role = reader_role(target)

    def step(conn: Any) -> None:
        pg = psycopg_module()
        try:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(f'CREATE ROLE "{role}" NOLOGIN NOINHERIT')
            # PostgreSQL 16 gives a role's creator ADMIN on it but not SET: a separate grant lets it SET ROLE.
            option = "SET" if conn.info.server_version >= 160000 else "MEMBER"
            if not conn.execute(f"SELECT pg_has_role(current_user, %s, '{option}')", (role,)).fetchone()[0]:
                conn.execute(f'GRANT "{role}" TO CURRENT_USER')
        except pg.errors.InsufficientPrivilege:
            user = conn.execute("SELECT current_user").fetchone()[0]
            raise PostgresError(
                f"role {user!r} may not create the read-only role {role!r} that reads run as (row-level security): "
                f'ask an administrator to run: CREATE ROLE "{role}" NOLOGIN; GRANT "{role}" TO "{user}"; '
                f"(or give {user!r} CREATEROLE)") from None

    return step
