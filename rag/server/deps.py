"""Request dependencies: the caller's key (401 / 429), admin-only routes (403), question checks (400)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from rag.access import ApiKey
from rag.retrieve import parse_filters
from rag.server.schemas import QueryBody
from rag.server.state import record, state


def authed(request: Request) -> ApiKey:
    """The caller's key from `Authorization: Bearer <key>`; 401 without a valid one, 429 over the rate."""
    st = state(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    key = st.access.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise HTTPException(401, "missing or invalid API key: send 'Authorization: Bearer <key>' "
                                 "(create one with: rag keys create)", headers={"WWW-Authenticate": "Bearer"})
    record(request, key_id=key.id)
    wait = st.limiter.check(key.id)
    if wait:
        raise HTTPException(429, f"rate limit of {st.limiter.per_minute} requests a minute for this key reached; "
                                 f"retry in {wait:.0f}s", headers={"Retry-After": str(int(wait) + 1)})
    return key


Key = Annotated[ApiKey, Depends(authed)]


def admin(key: Key) -> ApiKey:
    if not key.is_admin:
        raise HTTPException(403, "this route needs an admin key")
    return key


Admin = Annotated[ApiKey, Depends(admin)]


def check_question(request: Request, question: str, body: QueryBody) -> None:
    """400 for an empty or too long question, or a bad filter, before any work starts."""
    limit = state(request).config.max_question_chars
    if not question.strip():
        raise HTTPException(400, "the question is empty")
    if len(question) > limit:
        raise HTTPException(400, f"the question has {len(question)} characters; the limit is {limit} "
                                 "(server.max_question_chars)")
    parse_filters(body.filters)
