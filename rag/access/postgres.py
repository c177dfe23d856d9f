"""Access control in PostgreSQL, shared by every server replica: API keys, the audit log, rate limits, upload jobs.

Selected by `[index] backend = "postgres"` (rag.factory). The tables live in the index's schema, beside the
documents, and are versioned as the component "access". A key revoked through any replica (or `rag keys revoke`)
is refused by every replica from its next request; a rate limit counts the requests of every replica, against
the database server's clock.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from ingest.backend import PostgresTarget
from ingest.pg.connect import connect, migrate
from rag.access.auditqueue import AuditQueue
from rag.access.limits import SharedRateLimiter
from rag.access.records import TOKEN_PREFIX, ApiKey, AuditEntry, NewKey, hash_token
from rag.access.store import audit_row, new_key

log = logging.getLogger(__name__)

M1_ACCESS = """
CREATE TABLE {s}.api_keys (
    id text PRIMARY KEY,
    name text NOT NULL,
    key_hash text NOT NULL UNIQUE,
    role text NOT NULL,
    tenants text[] NOT NULL,
    created_at double precision NOT NULL,
    revoked_at double precision
);
CREATE TABLE {s}.audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at double precision NOT NULL,
    key_id text,
    route text NOT NULL,
    question text,
    sources text NOT NULL DEFAULT '[]',
    refused boolean,
    status integer
);
CREATE TABLE {s}.rate_events (scope text NOT NULL, key text NOT NULL, at double precision NOT NULL);
CREATE INDEX rate_events_key ON {s}.rate_events (scope, key, at);
CREATE TABLE {s}.upload_jobs (
    id text PRIMARY KEY,
    tenant text,
    files text[] NOT NULL,
    status text NOT NULL,
    created double precision NOT NULL,
    finished double precision,
    report jsonb,
    error text NOT NULL DEFAULT ''
);
"""
STEPS = (M1_ACCESS,)
NOW = "extract(epoch FROM clock_timestamp())"  # the database server's clock: one clock for every replica


def open_shared(target: PostgresTarget, application: str) -> Any:
    """A connection to the index's schema with the access tables up to date."""
    conn = connect(target, application)
    try:
        migrate(conn, target, "access", STEPS)
    except BaseException:
        conn.close()
        raise
    return conn


def _text(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value  # PostgreSQL text holds no NUL


def _key(r: tuple[Any, ...]) -> ApiKey:
    return ApiKey(id=r[0], name=r[1], role=r[2], tenants=tuple(r[3]), created_at=r[4], revoked_at=r[5])


class PgAccessStore:
    """API keys and the audit log (the AccessStore interface); audit rows are written by a background thread."""

    def __init__(self, target: PostgresTarget) -> None:
        self.target = target
        self._db = open_shared(target, "rag-access")
        self._lock = threading.Lock()
        self._audit = AuditQueue(lambda: open_shared(target, "rag-audit"), self._insert)

    def close(self) -> None:
        self._audit.close()
        with self._lock:
            self._db.close()

    def create_key(self, name: str, role: str, tenants: list[str] | tuple[str, ...]) -> NewKey:
        new = new_key(name, role, tenants)
        k = new.key
        with self._lock:
            self._db.execute("INSERT INTO api_keys(id, name, key_hash, role, tenants, created_at) "
                             "VALUES (%s, %s, %s, %s, %s, %s)",
                             (k.id, _text(k.name), hash_token(new.token), k.role, list(k.tenants), k.created_at))
        return new

    def list_keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute("SELECT id, name, role, tenants, created_at, revoked_at FROM api_keys "
                                    "ORDER BY created_at").fetchall()
        return [_key(r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            cur = self._db.execute(f"UPDATE api_keys SET revoked_at = {NOW} WHERE id = %s AND revoked_at IS NULL",
                                   (key_id,))
        return cur.rowcount > 0

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key with this plaintext token, or None (read from the database on every request)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        with self._lock:
            row = self._db.execute("SELECT id, name, role, tenants, created_at, revoked_at FROM api_keys "
                                   "WHERE key_hash = %s AND revoked_at IS NULL", (hash_token(token),)).fetchone()
        return _key(row) if row else None

    def record(self, route: str, key_id: str | None, status: int, question: str | None = None,
               sources: list[str] | tuple[str, ...] = (), refused: bool | None = None) -> None:
        """Queue one audit row; never raises, never waits on the database."""
        self._audit.put(tuple(_text(v) for v in audit_row(route, key_id, status, question, sources, refused)))

    def flush(self, timeout: float = 30.0) -> bool:
        return self._audit.flush(timeout)

    @staticmethod
    def _insert(db: Any, batch: list[tuple[Any, ...]]) -> None:
        with db.transaction(), db.cursor() as cur:
            cur.executemany("INSERT INTO audit(at, key_id, route, question, sources, refused, status) "
                            "VALUES (%s, %s, %s, %s, %s, %s::int::boolean, %s)", batch)

    def audit(self, limit: int = 50) -> list[AuditEntry]:
        with self._lock:
            rows = self._db.execute("SELECT id, at, key_id, route, question, sources, refused, status FROM audit "
                                    "ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
        return [AuditEntry(id=r[0], at=r[1], key_id=r[2], route=r[3], question=r[4],
                           sources=tuple(json.loads(r[5] or "[]")), refused=r[6], status=r[7]) for r in rows]


class PgRateLimiter(SharedRateLimiter):
    """The RateLimiter interface over one table: a sliding window of events per (scope, key) that every replica
    shares. `check` counts and decides under a transaction-scoped advisory lock on the key."""

    def __init__(self, target: PostgresTarget, per_minute: int, scope: str, window: float = 60.0) -> None:
        self.per_minute, self.scope, self.window = per_minute, scope, window
        self._db = open_shared(target, f"rag-limits-{scope}") if per_minute > 0 else None
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()

    def _run(self, key_id: str, count: bool, only_if_under: bool) -> float:
        if self._db is None:
            return 0.0
        db = self._db
        with self._lock, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"rag-rate:{self.scope}:{key_id}",))
            now = float(db.execute(f"SELECT {NOW}").fetchone()[0])
            db.execute("DELETE FROM rate_events WHERE scope = %s AND key = %s AND at <= %s",
                       (self.scope, key_id, now - self.window))
            row = db.execute("SELECT at FROM rate_events WHERE scope = %s AND key = %s ORDER BY at DESC "
                             "OFFSET %s LIMIT 1", (self.scope, key_id, self.per_minute - 1)).fetchone()
            wait = max(0.001, row[0] + self.window - now) if row else 0.0
            if count and not (only_if_under and wait):
                db.execute("INSERT INTO rate_events(scope, key, at) VALUES (%s, %s, %s)", (self.scope, key_id, now))
            return wait
