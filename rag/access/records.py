"""Records of access control: API keys (with a role and tenants), new keys, audit rows; tenant names."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from ingest.records import TENANT_NAME, TENANT_RULE
from rag.errors import RagError

ROLES = ("reader", "admin")
ALL_TENANTS = "*"
TOKEN_PREFIX = "rag_"


class AccessError(RagError):
    """A key, role or tenant given to the access store is not valid; the message says what is allowed."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_tenant(name: str) -> str:
    """A tenant name as stored on documents and keys (also used as an upload folder name)."""
    if not isinstance(name, str) or not TENANT_NAME.match(name):
        raise AccessError(f"bad tenant name {name!r}: use {TENANT_RULE} (or '{ALL_TENANTS}' on a key for every tenant)")
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


