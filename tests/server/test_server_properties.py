"""Property-based tests of the HTTP API's request bodies (issue 9): arbitrary JSON values, strings with lone
surrogates and NULs, huge numbers, wrong types, invalid UTF-8, odd uploads. Whatever is sent: never a 500 (nor a
stream that fails inside), never a hang, errors in the JSON error shape, and the server keeps serving and
auditing afterwards. In-process (TestClient over create_app) over a small real index, extractive answers.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from index_backends import BACKENDS, pg_target

pytestmark = pytest.mark.slow
HANG = 30.0  # seconds one request may take before it counts as a hang
RUN = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

SPECIAL = ["\ud800", "falcon \ud800", "\udfff\ud800x", "\x00", "a\x00b", "\u202e\u200b", "🦅" * 3, "x" * 3000, "",
           " ", "source=*", "type=pdf", "tag=\x00", "*" * 300, '"', "\\", "NEAR(", "OR AND NOT", "</document>",
           "zebrafish", "What water temperature does the zebrafish aquarium need?"]
CHARS = st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"]),
                  st.sampled_from(["\x00", "\u202e", "<", "/", "=", "*", '"', "\n"]))
TEXT = st.one_of(st.text(st.characters(), max_size=60), st.text(CHARS, max_size=40), st.sampled_from(SPECIAL))
NUMBER = st.one_of(st.integers(), st.integers(-(10**300), 10**300), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0, -1, 1, 100, 101, 2**63, -(2**63) - 1, 1e308, -0.0]))
JSON = st.recursive(st.none() | st.booleans() | NUMBER | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=10)
FILTER = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["source", "type", "section", "tag", "x", ""]), TEXT)
RAW = [b"", b"{", b"[]", b"null", b'"x"', b"\xff\xfe\x00", b'{"question": "\xed\xa0\x80"}',  # invalid UTF-8
       b'{"question": "x", "k": ' + b"9" * 5000 + b"}",  # an integer Python refuses to parse
       b'{"question": "x", "k": 1e999999}', b'{"question": "x", "question": 5}', b'{"question": NaN}',
       b"[" * 5000 + b"]" * 5000]  # deep nesting
PLAUSIBLE = {"filters": st.lists(FILTER, max_size=3), "k": st.integers(1, 100),
             "mode": st.sampled_from(["dense", "keyword", "hybrid"])}


def bodies(required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """Plausible bodies (odd text, sane types: these reach retrieval and answering), the same with one field
    replaced or added by any JSON value, and any JSON value at all."""
    shaped = st.fixed_dictionaries(required, optional=optional)
    mutated = st.builds(lambda body, key, value: {**body, key: value}, shaped,
                        st.sampled_from([*required, *optional, "extra"]), JSON)
    return st.one_of(shaped, shaped, mutated, JSON)


ASK = bodies({"question": TEXT}, {**PLAUSIBLE, "verify": st.booleans(),
                                  "history": st.lists(st.tuples(TEXT, TEXT), max_size=3)})
RETRIEVE = bodies({"query": TEXT}, PLAUSIBLE)
PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "text", "image_url", "x"]), "text": TEXT})
CONTENT = st.one_of(TEXT, st.lists(PART, max_size=3), st.none())
TURN = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "developer"]),
                              "content": CONTENT})
LAST = st.fixed_dictionaries({"role": st.just("user"), "content": st.one_of(TEXT, CONTENT)})
CHAT = bodies({"messages": st.builds(lambda turns, last: [*turns, last], st.lists(TURN, max_size=3), LAST)},
              {**PLAUSIBLE, "stream": st.booleans(), "model": st.sampled_from(["rag", "", "gpt-4o"])})


@pytest.fixture(scope="module", params=BACKENDS)
def ip(request: pytest.FixtureRequest, small_index: Path, make_app, two_tenant_index,  # noqa: ANN001
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app over the two-tenant index on each backend (the postgres one: index, keys, audit log and jobs in
    PostgreSQL). The upload jobs its examples start are kept on it, for the last test."""
    if request.param == "embedded":
        target = None
        index = Path(shutil.copytree(small_index, tmp_path_factory.mktemp("props") / "index"))
    else:
        request.getfixturevalue("postgres")
        target = pg_target("props")
        index = two_tenant_index(tmp_path_factory.mktemp("props-pg"), target)
    with make_app(index, target=target, rate_limit_per_minute=0) as app:  # every example reaches the route
        yield app


def within(call: Callable[[], httpx.Response]) -> httpx.Response:
    """The response of `call`, which must come within HANG seconds."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["response"] = call()
        except BaseException as e:  # re-raised in the test's thread
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG)
    assert not t.is_alive(), f"the request hung for over {HANG:.0f}s"
    if "error" in out:
        raise out["error"]
    return out["response"]


def well_behaved(r: httpx.Response) -> None:
    with contextlib.suppress(Exception):  # outside a @given test there are no statistics
        event(f"status {r.status_code}")  # shown by --hypothesis-show-statistics: how many examples got how far
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str), err
    elif r.headers["content-type"].startswith("text/event-stream"):
        assert '"server_error"' not in r.text and r.text.rstrip().endswith("data: [DONE]"), r.text[-500:]
    else:
        r.json()


def post_json(ip, path: str, body: Any, key: str = "reader_a") -> httpx.Response:  # noqa: ANN001
    content = json.dumps(body).encode()  # ASCII: lone surrogates go as \\ud800 escapes, NaN as NaN
    return within(lambda: ip.client.post(path, content=content,
                                         headers={**ip.as_key(key), "content-type": "application/json"}))


@RUN
@given(body=ASK)
def test_ask_never_fails_on_any_body(ip, body) -> None:  # noqa: ANN001
    well_behaved(post_json(ip, "/v1/ask", body))


@RUN
@given(body=RETRIEVE)
def test_retrieve_never_fails_on_any_body(ip, body) -> None:  # noqa: ANN001
    well_behaved(post_json(ip, "/v1/retrieve", body))


@RUN
@given(body=CHAT)
def test_chat_never_fails_on_any_body(ip, body) -> None:  # noqa: ANN001
    well_behaved(post_json(ip, "/v1/chat/completions", body))


@pytest.mark.parametrize("raw", RAW, ids=range(len(RAW)))
@pytest.mark.parametrize("path", ["/v1/ask", "/v1/retrieve", "/v1/chat/completions"])
def test_raw_bodies_never_fail(ip, path: str, raw: bytes) -> None:  # noqa: ANN001
    well_behaved(within(lambda: ip.client.post(path, content=raw, headers={**ip.as_key("reader_a"),
                                                                          "content-type": "application/json"})))


GOOD_NAME = st.builds(lambda stem, ext: stem + ext, st.text("abxyz_- .é", min_size=1, max_size=10),
                      st.sampled_from([".md", ".txt", ".html", ".pdf"]))
FILE_NAME = st.one_of(GOOD_NAME, GOOD_NAME, GOOD_NAME, st.builds(lambda stem, ext: stem + ext, TEXT,
                                                                 st.sampled_from([".md", ".exe", ""])), TEXT)
FORM_TEXT = st.one_of(st.none(), st.sampled_from(["A", "B", "*", "../x", ""]), TEXT)


def _encodable(text: str | None) -> str | None:  # a client cannot send a lone surrogate in a form field
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")


NAMES = st.one_of(st.lists(GOOD_NAME, min_size=1, max_size=2, unique=True), st.lists(FILE_NAME, max_size=2, unique=True))
CONTENT_BYTES = st.one_of(st.binary(max_size=300), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=NAMES, content=CONTENT_BYTES, tenant=st.one_of(st.sampled_from([None, "A", "B"]), FORM_TEXT),
       tags=st.lists(FORM_TEXT, max_size=3))
def test_uploads_never_fail(ip, names, content, tenant, tags) -> None:  # noqa: ANN001
    files = [("files", (_encodable(n) or "x", content, "application/octet-stream")) for n in names]
    data: dict[str, Any] = {}
    if tenant is not None:
        data["tenant"] = _encodable(tenant)
    if [t for t in tags if t is not None]:
        data["tags"] = [_encodable(t) for t in tags if t is not None]
    r = within(lambda: ip.client.post("/v1/documents", files=files or None, data=data, headers=ip.as_key("admin")))
    well_behaved(r)
    if r.status_code == 202:
        ip.jobs.append(r.json()["id"])  # checked by the last test


@RUN
@given(source=TEXT, tenant=FORM_TEXT)
def test_deletes_never_fail(ip, source, tenant) -> None:  # noqa: ANN001
    from urllib.parse import quote

    path = "/v1/documents/" + quote(source.encode("utf-8", "surrogatepass"), safe="")
    params = {} if tenant is None else {"tenant": _encodable(tenant)}
    r = within(lambda: ip.client.delete(path or "/v1/documents/x", params=params, headers=ip.as_key("admin")))
    assert r.status_code < 500, r.text


def test_the_server_still_serves_and_audits_after_all_that(ip) -> None:  # noqa: ANN001
    import time

    deadline = time.monotonic() + 120
    for job_id in ip.jobs:  # every upload that was accepted ends, and not in an internal error
        while (job := ip.client.get(f"/v1/documents/jobs/{job_id}", headers=ip.as_key("admin")).json()
               )["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, f"upload job {job_id} never finished"
            time.sleep(0.1)
        assert job["error"] != "internal error", job
    question = "What water temperature does the zebrafish aquarium need? (after the properties)"
    r = post_json(ip, "/v1/ask", {"question": question})
    assert r.status_code == 200 and "28 degrees" in r.json()["answer"]
    assert ip.access.flush(30)
    assert any(row.question == question and row.status == 200 for row in ip.access.audit(50))
    assert all(row.status < 500 for row in ip.access.audit(100_000)), "some request was answered with a 5xx"
