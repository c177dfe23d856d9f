"""Who may use the HTTP server: hashed API keys with a role and tenants, rate limits, and the audit log.

Access control owns its tables (rag.access.schema), versioned apart from the index schema.
"""

from rag.access.limits import RateLimiter
from rag.access.records import ALL_TENANTS, ROLES, TOKEN_PREFIX, AccessError, ApiKey, AuditEntry, NewKey, check_tenant, hash_token
from rag.access.store import AccessStore

__all__ = ["ALL_TENANTS", "ROLES", "TOKEN_PREFIX", "AccessError", "AccessStore", "ApiKey", "AuditEntry", "NewKey",
           "RateLimiter", "check_tenant", "hash_token"]
