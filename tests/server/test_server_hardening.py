"""Hostile and careless requests (issue 9): lone surrogates, huge histories and filter lists, URL floods, password
guessing, the schema without a key, file modes; in-process over a real index unless a real process is needed."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
import tomllib
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SURROGATE_BODIES = [  # raw JSON: "\\ud800" is a valid JSON escape that decodes to a lone surrogate
    ("/v1/ask", '{"question": "falcon \\ud800"}'),
    ("/v1/retrieve", '{"query": "falcon \\ud800"}'),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "falcon \\ud800"}]}'),
    ("/v1/chat/completions", '{"stream": true, "messages": [{"role": "user", "content": "falcon \\udfff x"}]}'),
    ("/v1/ask", '{"question": "zebrafish?", "history": [["falcon \\ud800", "ok"]]}'),
    ("/v1/ask", '{"question": "zebrafish?", "filters": ["source=\\ud800*"]}'),
]


def _error(r: httpx.Response, status: int, words: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err["message"], err
    return err


def _rows(ip, route: str | None = None) -> list:  # noqa: ANN001
    assert ip.access.flush(10), "the audit writer did not drain its queue"
    return [r for r in ip.access.audit(10_000) if route is None or r.route == route]


def test_lone_surrogate_gets_400_and_auditing_goes_on(small_index, make_app) -> None:
    """Once a 500 that also killed the audit writer thread: nothing was audited after it."""
    with make_app(small_index) as ip:
        headers = {**ip.as_key("reader_a"), "content-type": "application/json"}
        for path, raw in SURROGATE_BODIES:
            r = ip.client.post(path, content=raw.encode(), headers=headers)
            _error(r, 400, "lone surrogate")
        for _ in range(3):  # the server and its audit writer keep working
            after = ip.client.post("/v1/ask", json={"question": "How often is the zebrafish fed? (after)"},
                                   headers=ip.as_key("reader_a"))
            assert after.status_code == 200 and "twice daily" in after.json()["answer"]
        rows = _rows(ip)
        bad = [r for r in rows if r.status == 400]
        assert len(bad) == len(SURROGATE_BODIES)
        assert any(r.question and r.question.startswith("falcon ") for r in bad)  # stored, with the surrogate replaced
        assert sum(r.question == "How often is the zebrafish fed? (after)" and r.status == 200 for r in rows) == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_rag_serve_stops_promptly_after_a_surrogate(server, spawn, tmp_path, sig) -> None:
    proc, url, log = spawn(tmp_path, server.index, f"stop-{sig.name}")
    try:
        key = server.keys["reader_a"]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            bad = c.post("/v1/ask", content=b'{"question": "falcon \\ud800"}', headers={"content-type": "application/json"})
            assert bad.status_code == 400, bad.text
            marker = f"zebrafish feeding after a surrogate ({sig.name}) {time.time()}"
            assert c.post("/v1/retrieve", json={"query": marker}).status_code == 200
        from rag.access import AccessStore

        store = AccessStore(server.index)
        try:
            deadline = time.monotonic() + 10
            while not any(r.question == marker for r in store.audit(200)):
                assert time.monotonic() < deadline, "the request after the surrogate was never audited"
                time.sleep(0.2)
        finally:
            store.close()
        t = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(15) is not None
        assert time.monotonic() - t < 10, f"rag serve took {time.monotonic() - t:.1f}s to stop on {sig.name}"
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_history_is_bounded_like_the_question(small_index, make_app) -> None:
    """A 1.1 MB history once held the retrieval path for seconds; now it is refused before any work."""
    with make_app(small_index) as ip:
        key = ip.as_key("reader_a")
        limit = ip.rag.config.server.max_history_chars
        history = [["x" * 1000, "y" * 1000]] * 550  # 1.1 MB
        t = time.monotonic()
        _error(ip.client.post("/v1/ask", json={"question": "zebrafish?", "history": history}, headers=key), 400,
               f"the limit is {limit} (server.max_history_chars)")
        messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": "z" * 2000} for i in range(550)]
        messages.append({"role": "user", "content": "zebrafish?"})
        _error(ip.client.post("/v1/chat/completions", json={"messages": messages}, headers=key), 400,
               "server.max_history_chars")
        system = [{"role": "system", "content": "s" * (limit + 1)}, {"role": "user", "content": "zebrafish?"}]
        _error(ip.client.post("/v1/chat/completions", json={"messages": system}, headers=key), 400, "earlier turns")
        assert time.monotonic() - t < 5
        ok = [["When is the aquarium filter pump cleaned?", "Every Monday [1]."]]
        r = ip.client.post("/v1/ask", json={"question": "Where is the spare one kept?", "history": ok}, headers=key)
        assert r.status_code == 200
    with make_app(small_index, max_history_chars=50) as ip:  # the setting is read
        r = ip.client.post("/v1/ask", json={"question": "zebrafish?", "history": [["q" * 30, "a" * 30]]},
                           headers=ip.as_key("reader_a"))
        _error(r, 400, "the limit is 50")


def test_filters_are_capped_in_number_and_length(small_index, make_app) -> None:
    """40,000 filters once made a 500 (an SQL statement too big for SQLite)."""
    with make_app(small_index) as ip:
        key = ip.as_key("reader_a")
        for path, field in (("/v1/ask", "question"), ("/v1/retrieve", "query")):
            many = {field: "zebrafish?", "filters": ["source=*.md"] * 40_000}
            _error(ip.client.post(path, json=many, headers=key), 400, "at most 32 are allowed")
            long = {field: "zebrafish?", "filters": ["source=" + "*" * 10_000]}
            _error(ip.client.post(path, json=long, headers=key), 400, "the limit is 256")
        chat = {"messages": [{"role": "user", "content": "zebrafish?"}], "filters": ["tag=x"] * 33}
        _error(ip.client.post("/v1/chat/completions", json=chat, headers=key), 400, "at most 32")
        fine = {"query": "zebrafish", "filters": ["source=*.md"] * 32}
        assert ip.client.post("/v1/retrieve", json=fine, headers=key).status_code == 200


def test_audit_rows_of_huge_anonymous_requests_are_capped(small_index, make_app) -> None:
    """A 60 KB URL once made a 60 KB audit row for every anonymous 401."""
    with make_app(small_index) as ip:
        long_source = "a" * 60_000 + ".md"
        r = ip.client.delete(f"/v1/documents/{long_source}")
        assert r.status_code == 401 and len(r.content) < 2000
        r = ip.client.post("/v1/ask", json={"question": "q" * 1_000_000}, headers=ip.as_key("reader_a"))
        assert r.status_code == 400 and len(r.content) < 2000
        rows = _rows(ip)
        anonymous = [x for x in rows if x.status == 401]
        assert len(anonymous) == 1 and anonymous[0].key_id is None
        assert anonymous[0].route.startswith("DELETE /v1/documents/aaa") and len(anonymous[0].route) <= 256
        long_q = [x for x in rows if x.route == "POST /v1/ask"]
        assert long_q and len(long_q[0].question) <= 4000
        size = max(len(x.route) + len(x.question or "") + len(json.dumps(x.sources)) for x in rows)
        assert size < 5000


def test_failed_authentication_is_rate_limited_per_address(small_index, make_app) -> None:
    from fastapi.testclient import TestClient

    with make_app(small_index, client_address="203.0.113.7") as ip:
        bad = {"Authorization": "Bearer rag_guess"}
        statuses = [ip.client.get("/v1/models", headers=bad).status_code for _ in range(30)]
        assert statuses == [401] * 30
        r = ip.client.get("/v1/models", headers=bad)
        err = _error(r, 429, "server.auth_failures_per_minute")
        assert err["type"] == "rate_limit_error" and 1 <= int(r.headers["retry-after"]) <= 61
        # while the address is over its limit even a right key is refused: guessing gains nothing
        assert ip.client.get("/v1/models", headers=ip.as_key("reader_a")).status_code == 429
        assert ip.client.get("/healthz").status_code == 200
        other = TestClient(ip.app, raise_server_exceptions=False, client=("198.51.100.2", 1))
        assert other.get("/v1/models", headers=ip.as_key("reader_a")).status_code == 200
        assert other.get("/v1/models", headers=bad).status_code == 401
        assert sum(x.status == 429 for x in _rows(ip)) == 2  # refused guesses are audited too
    with make_app(small_index, auth_failures_per_minute=2) as ip:
        assert [ip.client.get("/v1/models").status_code for _ in range(3)] == [401, 401, 429]
    with make_app(small_index, auth_failures_per_minute=0) as ip:  # 0: no limit
        assert {ip.client.get("/v1/models").status_code for _ in range(40)} == {401}


def test_rate_limiter_counts_failures_apart_from_requests() -> None:
    from rag.access import RateLimiter

    lim = RateLimiter(2, window=0.2)
    assert lim.blocked("a") == 0
    lim.hit("a")
    assert lim.blocked("a") == 0
    lim.hit("a")
    lim.hit("a")
    assert lim.blocked("a") > 0 and lim.blocked("b") == 0
    time.sleep(0.25)
    assert lim.blocked("a") == 0


def test_schema_and_docs_need_a_key(small_index, make_app) -> None:
    with make_app(small_index) as ip:
        for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
            r = ip.client.get(path)
            assert r.status_code in (401, 404), (path, r.status_code)
            assert "paths" not in r.text
        assert ip.client.get("/openapi.json").status_code == 401
        schema = ip.client.get("/openapi.json", headers=ip.as_key("reader_a")).json()
        assert {"/v1/chat/completions", "/v1/ask", "/v1/retrieve", "/v1/documents"} <= set(schema["paths"])


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_store_and_uploads_are_private(app_copy, make_app, embedder, tmp_path) -> None:
    """store.sqlite and uploads were once 0644: readable by every user of the machine."""
    with make_app(app_copy) as ip:
        r = ip.client.post("/v1/documents", data={"tenant": "A"}, headers=ip.as_key("admin"),
                           files={"files": ("secret plan.md", b"# Plan\nThe secret plan is filed under falcon.\n")})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while (job := ip.client.get(f"/v1/documents/jobs/{r.json()['id']}", headers=ip.as_key("admin")).json()
               )["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert job["status"] == "done", job
        uploads = app_copy / "uploads"
        assert _mode(uploads / "A" / "secret_plan.md") == 0o600
        assert _mode(uploads / "A") == 0o700 and _mode(uploads) == 0o700
        for name in ("store.sqlite", "store.sqlite-wal", "store.sqlite-shm"):
            if (app_copy / name).exists():
                assert _mode(app_copy / name) == 0o600, name
    # a new index made by ingest alone, and an old one left readable by an earlier version
    from rag import api
    from rag.access import AccessStore

    fresh = tmp_path / "fresh"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.md").write_text("# A\nSome text about falcons.\n")
    api.ingest([tmp_path / "d"], fresh, embedder=embedder)
    assert _mode(fresh / "store.sqlite") == 0o600
    os.chmod(fresh / "store.sqlite", 0o644)
    AccessStore(fresh).close()
    assert _mode(fresh / "store.sqlite") == 0o600


def test_config_toml_documents_every_server_setting() -> None:
    from rag.config import ServerConfig

    documented = tomllib.loads((ROOT / "config.toml").read_text())["server"]
    defaults = ServerConfig().model_dump()
    assert set(documented) == set(defaults)
    assert {k: documented[k] for k in defaults} == defaults
    assert defaults["max_history_chars"] == 20_000 and defaults["auth_failures_per_minute"] == 30


def test_making_the_store_private_keeps_other_connections_locked(tmp_path) -> None:
    """Opening and closing store.sqlite to set its mode (as every ingest run did) dropped the POSIX locks of
    every other connection of the process: another process closing its connection then took the database for
    its own, removed the WAL, and this process's key lookups went on reading a stale copy (fresh keys got 401)."""
    import subprocess
    import sys

    from ingest.store import Store
    from rag.access import AccessStore

    access = AccessStore(tmp_path)
    assert access.authenticate("rag_x") is None  # the connection is open and has read
    Store(tmp_path / "store.sqlite").close()  # what an ingest run in the server does
    create = ("import sys; from rag.access import AccessStore; s = AccessStore(sys.argv[1]); "
              "print(s.create_key('k', 'reader', ['A']).token); s.close()")
    try:
        for _ in range(2):  # the first may take the database as its own when it closes; the second writes anew
            token = subprocess.run([sys.executable, "-c", create, str(tmp_path)], capture_output=True, text=True,
                                   check=True, timeout=120).stdout.strip()
            assert access.authenticate(token) is not None, "a key made by another process is not seen"
    finally:
        access.close()
