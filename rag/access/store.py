"""API keys and the audit log, in the access tables of the index directory's SQLite file (rag.access.schema)."""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ingest.fsutil import private_file
from rag.access import schema
from rag.access.auditqueue import AuditQueue
from rag.access.records import ALL_TENANTS, ROLES, TOKEN_PREFIX, AccessError, ApiKey, AuditEntry, NewKey, check_tenant, hash_token

log = logging.getLogger(__name__)
STORE_FILE = "store.sqlite"


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
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path = private_file(directory / STORE_FILE)  # key hashes and asked questions: owner only
            self._db = _connect(self.path)
        except (OSError, sqlite3.Error) as e:
            what = "is not a folder" if directory.exists() and not directory.is_dir() else f"cannot be opened: {e}"
            raise AccessError(f"index {directory} {what} (API keys and the audit log are kept there)") from None
        schema.migrate(self._db)
        self._lock = threading.Lock()
        self._audit = AuditQueue(lambda: _connect(self.path), self._insert)

    def close(self) -> None:
        self._audit.close()
        with self._lock:
            self._db.close()

    # --- keys -----------------------------------------------------------------------------------
    def create_key(self, name: str, role: str, tenants: list[str] | tuple[str, ...]) -> NewKey:
        """A new key; its plaintext token is returned once and only its SHA-256 is stored."""
        new = new_key(name, role, tenants)
        key = new.key
        with self._lock, self._db:
            self._db.execute("INSERT INTO api_keys(id, name, key_hash, role, tenants, created_at) VALUES(?,?,?,?,?,?)",
                             (key.id, key.name, hash_token(new.token), key.role, json.dumps(list(key.tenants)),
                              key.created_at))
        return new

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

    # --- audit ----------------------------------------------------------------------------------
    def record(self, route: str, key_id: str | None, status: int, question: str | None = None,
               sources: list[str] | tuple[str, ...] = (), refused: bool | None = None) -> None:
        """Queue one audit row (written by a background thread; `flush()` waits for it).

        Never raises and never blocks on the database: text is made storable (lone surrogates replaced) and
        capped, so no request, however malformed, can stop the audit log.
        """
        self._audit.put(audit_row(route, key_id, status, question, sources, refused))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued audit row is written; False when that took longer than `timeout`."""
        return self._audit.flush(timeout)

    @staticmethod
    def _insert(db: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
        sql = "INSERT INTO audit(at, key_id, route, question, sources, refused, status) VALUES(?,?,?,?,?,?,?)"
        for attempt in range(3):
            try:
                with db:
                    db.executemany(sql, batch)
                return
            except sqlite3.OperationalError as e:  # locked for longer than the timeout: try again
                log.warning("audit write failed (%s); attempt %d of 3", e, attempt + 1)
                time.sleep(0.5 * (attempt + 1))
            except Exception as e:  # one bad row must not lose the others, nor end the writer
                log.error("audit rows could not be written together (%s); writing them one by one", e)
                for row in batch:
                    try:
                        with db:
                            db.execute(sql, row)
                    except Exception as e1:
                        log.error("audit row dropped: %s", e1)
                return
        log.error("%d audit row(s) could not be written: the database stayed locked", len(batch))

    def audit(self, limit: int = 50) -> list[AuditEntry]:
        """The latest audit rows, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [AuditEntry(id=r["id"], at=r["at"], key_id=r["key_id"], route=r["route"], question=r["question"],
                           sources=tuple(json.loads(r["sources"] or "[]")),
                           refused=None if r["refused"] is None else bool(r["refused"]), status=r["status"])
                for r in rows]




MAX_ROUTE = 256
MAX_QUESTION = 4000
MAX_SOURCES = 50


def new_key(name: str, role: str, tenants: list[str] | tuple[str, ...]) -> NewKey:
    """A checked new key and its plaintext token (either store keeps only the token's SHA-256)."""
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}; valid roles are: {', '.join(ROLES)}")
    if not name.strip():
        raise AccessError("a key needs a --name")
    if not tenants:
        raise AccessError(f"a key needs at least one --tenant (or '{ALL_TENANTS}' for every tenant)")
    clean = tuple(dict.fromkeys(t if t == ALL_TENANTS else check_tenant(t) for t in tenants))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id="key_" + secrets.token_hex(6), name=name.strip(), role=role, tenants=clean, created_at=time.time())
    return NewKey(key, token)


def audit_row(route: str, key_id: str | None, status: int, question: str | None,
              sources: list[str] | tuple[str, ...], refused: bool | None) -> tuple[Any, ...]:
    """(at, key_id, route, question, sources as JSON, refused as 0/1/None, status), storable and capped."""
    return (time.time(), _clean(key_id, 64), _clean(route, MAX_ROUTE) or "?", _clean(question, MAX_QUESTION),
            json.dumps([_clean(s, MAX_ROUTE) for s in dict.fromkeys(sources)][:MAX_SOURCES]),
            None if refused is None else int(refused), int(status))


def _clean(text: str | None, limit: int) -> str | None:
    """Text that SQLite can store (lone surrogates replaced), at most `limit` characters."""
    if text is None:
        return None
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable enough for keys and audit
    db.row_factory = sqlite3.Row
    return db
