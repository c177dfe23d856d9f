"""Request dependencies: the caller's key (401 / 429), admin-only routes (403), question checks (400)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from rag.access import ApiKey
from rag.retrieve import parse_filters
from rag.server.schemas import QueryBody
from rag.server.state import record, state

MAX_FILTERS = 32  # filters of one request; each one is a clause of the retrieval query
MAX_FILTER_CHARS = 256


def authed(request: Request) -> ApiKey:
    """The caller's key from `Authorization: Bearer <key>`; 401 without a valid one, 429 over the rate (per key),
    or after too many failed attempts from the caller's address (server.auth_failures_per_minute)."""
    st = state(request)
    address = request.client.host if request.client else "unknown"
    wait = st.auth_failures.blocked(address)
    if wait:  # checked before the key: a guess that happens to be right is refused too while the address is over
        raise HTTPException(429, f"too many failed authentications from this address (the limit is "
                                 f"{st.auth_failures.per_minute} a minute, server.auth_failures_per_minute); "
                                 f"retry in {wait:.0f}s", headers={"Retry-After": str(int(wait) + 1)})
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    key = st.access.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        st.auth_failures.hit(address)
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


def check_question(request: Request, question: str, body: QueryBody, earlier: Sequence[str] = ()) -> None:
    """400 before any work starts for: an empty or too long question, earlier turns of the conversation
    (`earlier`: history, earlier chat messages) over their limit together, text that is not valid Unicode,
    too many or too long filters, or a filter that does not parse."""
    cfg = state(request).config
    unicode_text("the question", question)
    if not question.strip():
        raise HTTPException(400, "the question is empty")
    if len(question) > cfg.max_question_chars:
        raise HTTPException(400, f"the question has {len(question)} characters; the limit is "
                                 f"{cfg.max_question_chars} (server.max_question_chars)")
    total = sum(len(t) for t in earlier)
    if total > cfg.max_history_chars:
        raise HTTPException(400, f"the earlier turns of the conversation have {total} characters together; the "
                                 f"limit is {cfg.max_history_chars} (server.max_history_chars): send fewer or "
                                 "shorter earlier messages")
    for i, text in enumerate(earlier):
        unicode_text(f"earlier message {i + 1}", text)
    if len(body.filters) > MAX_FILTERS:
        raise HTTPException(400, f"{len(body.filters)} filters given; at most {MAX_FILTERS} are allowed")
    for f in body.filters:
        if len(f) > MAX_FILTER_CHARS:
            raise HTTPException(400, f"a filter has {len(f)} characters; the limit is {MAX_FILTER_CHARS}")
        unicode_text("a filter", f)
    parse_filters(body.filters)


def unicode_text(what: str, text: str) -> None:
    """400 for text that cannot be encoded as UTF-8 (a lone surrogate such as \\ud800, sent as a JSON escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise HTTPException(400, f"{what} holds a lone surrogate (U+{ord(text[e.start]):04X}) at character "
                                 f"{e.start}: send valid Unicode text") from None
