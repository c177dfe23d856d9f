"""Who may use the HTTP server: hashed API keys with a role and tenants, a per-key rate limit, the audit log."""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from ingest.collection import STORE_FILE
from ingest.store import Store
from rag.errors import RagError

log = logging.getLogger(__name__)

ROLES = ("reader", "admin")
ALL_TENANTS = "*"
TOKEN_PREFIX = "rag_"
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AccessError(RagError):
    """A key, role or tenant given to the access store is not valid; the message says what is allowed."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_tenant(name: str) -> str:
    """A tenant name as stored on documents and keys (also used as an upload folder name)."""
    if not _TENANT.match(name):
        raise AccessError(f"bad tenant name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                          f"starting with a letter or digit (or '{ALL_TENANTS}' on a key for every tenant)")
    return name


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str
    tenants: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def scope(self) -> tuple[str, ...] | None:
        """The `tenants=` argument of retrieval: None (every document) only for a '*' key."""
        return None if ALL_TENANTS in self.tenants else self.tenants

    def may_use(self, tenant: str | None) -> bool:
        """Whether documents of this tenant (None = ingested without one) are this key's to read or change."""
        return self.scope is None or tenant in self.scope

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tenants"] = list(self.tenants)
        return d


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    token: str  # the plaintext key: shown once, never stored


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    key_id: str | None
    route: str
    question: str | None
    sources: tuple[str, ...]
    refused: bool | None
    status: int | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d


def _key(r: sqlite3.Row) -> ApiKey:
    return ApiKey(id=r["id"], name=r["name"], role=r["role"], tenants=tuple(json.loads(r["tenants"])),
                  created_at=r["created_at"], revoked_at=r["revoked_at"])


class AccessStore:
    """API keys and the audit log, in the tables of the index's SQLite store.

    Reads use one connection behind a lock; audit rows go through a queue to a writer thread so that a
    request never waits on the database write lock (an ingest may hold it for a moment).
    """

    def __init__(self, index_dir: str | Path) -> None:
        directory = Path(index_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / STORE_FILE
        self._store = Store(self.path)  # creates the store and runs pending migrations
        self._db = self._store.db
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable enough for keys and audit
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._writer: threading.Thread | None = None

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._store.close()

    # --- keys -----------------------------------------------------------------------------------
    def create_key(self, name: str, role: str, tenants: list[str] | tuple[str, ...]) -> NewKey:
        """A new key; its plaintext token is returned once and only its SHA-256 is stored."""
        if role not in ROLES:
            raise AccessError(f"unknown role {role!r}; valid roles are: {', '.join(ROLES)}")
        if not name.strip():
            raise AccessError("a key needs a --name")
        if not tenants:
            raise AccessError(f"a key needs at least one --tenant (or '{ALL_TENANTS}' for every tenant)")
        clean = tuple(dict.fromkeys(t if t == ALL_TENANTS else check_tenant(t) for t in tenants))
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(id="key_" + secrets.token_hex(6), name=name.strip(), role=role, tenants=clean,
                     created_at=time.time())
        with self._lock, self._db:
            self._db.execute("INSERT INTO api_keys(id, name, key_hash, role, tenants, created_at) VALUES(?,?,?,?,?,?)",
                             (key.id, key.name, hash_token(token), key.role, json.dumps(list(clean)), key.created_at))
        return NewKey(key, token)

    def list_keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM api_keys ORDER BY created_at").fetchall()
        return [_key(r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key at once; False when no active key has this id."""
        with self._lock, self._db:
            cur = self._db.execute("UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                                   (time.time(), key_id))
        return cur.rowcount > 0

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key with this plaintext token, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM api_keys WHERE key_hash=? AND revoked_at IS NULL",
                                   (hash_token(token),)).fetchone()
        return _key(row) if row else None

    def document_tenant(self, source: str) -> tuple[bool, str | None]:
        """(exists, tenant) of an indexed document, read fresh from the store."""
        with self._lock:
            row = self._db.execute("SELECT tenant FROM documents WHERE source=?", (source,)).fetchone()
        return (row is not None, row[0] if row else None)

    # --- audit ----------------------------------------------------------------------------------
    def record(self, route: str, key_id: str | None, status: int, question: str | None = None,
               sources: list[str] | tuple[str, ...] = (), refused: bool | None = None) -> None:
        """Queue one audit row (written by a background thread; `flush()` waits for it)."""
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="rag-audit", daemon=True)
            self._writer.start()
        row = (time.time(), key_id, route, question, json.dumps(list(dict.fromkeys(sources))),
               None if refused is None else int(refused), status)
        self._queue.put(row)

    def flush(self) -> None:
        """Wait until every queued audit row is written."""
        if self._writer is not None:
            self._queue.join()

    def _write_loop(self) -> None:
        db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        db.execute("PRAGMA synchronous=NORMAL")
        while True:
            row = self._queue.get()
            batch = [row]
            while not self._queue.empty():  # group rows that arrived together into one transaction
                batch.append(self._queue.get_nowait())
            try:
                with db:
                    db.executemany("INSERT INTO audit(at, key_id, route, question, sources, refused, status)"
                                   " VALUES(?,?,?,?,?,?,?)", batch)
            except sqlite3.Error as e:
                log.error("could not write %d audit row(s): %s", len(batch), e)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def audit(self, limit: int = 50) -> list[AuditEntry]:
        """The latest audit rows, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [AuditEntry(id=r["id"], at=r["at"], key_id=r["key_id"], route=r["route"], question=r["question"],
                           sources=tuple(json.loads(r["sources"] or "[]")),
                           refused=None if r["refused"] is None else bool(r["refused"]), status=r["status"])
                for r in rows]


class RequestGuard:
    """The server's outermost ASGI layer: refuses bodies over the size limit (413), adds the security
    headers, and writes one audit row per API request (POST/DELETE, and any refused request)."""

    def __init__(self, app: Any, max_bytes: int, access: AccessStore, headers: dict[str, str],
                 error: Callable[[int, str], Any]) -> None:
        self.app, self.max_bytes, self.access, self.error = app, max_bytes, access, error
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        too_big = f"request body is over the limit of {self.max_bytes} bytes (server.max_request_bytes)"
        if not length.isdigit() or int(length) > self.max_bytes:
            return await self.error(413, too_big)(scope, receive, send)
        audit: dict[str, Any] = scope.setdefault("rag.audit", {})
        seen = 0

        async def receive_limited() -> dict:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, too_big)  # FastAPI re-raises it from body parsing; the app maps it
            return msg

        async def send_with_headers(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                audit.setdefault("status", msg["status"])
                msg["headers"] = list(msg.get("headers", [])) + self.headers
            await send(msg)

        try:
            await self.app(scope, receive_limited, send_with_headers)
        finally:
            path, method = scope["path"], scope["method"]
            status = audit.get("status", 500)
            if path.startswith("/v1/") and (method != "GET" or status >= 400):
                self.access.record(f"{method} {path}", audit.get("key_id"), status, audit.get("question"),
                                   audit.get("sources", ()), audit.get("refused"))


class RateLimiter:
    """A sliding one-minute window of requests per key."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> float:
        """0 when the request may go ahead (and counts it), else the seconds until it may be retried."""
        if self.per_minute <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            q = self._seen.setdefault(key_id, deque())
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.per_minute:
                return max(0.001, q[0] + self.window - now)
            q.append(now)
            return 0.0
