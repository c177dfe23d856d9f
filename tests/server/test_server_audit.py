"""The audit log (questions, keys, sources, refusals, status) and the `rag keys` / `rag audit` commands."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture()
def rag(rag_cli):  # noqa: ANN001, ANN201 - `rag(...)` runs the real command line
    return lambda *args: rag_cli.run(args)


def _audit(rag, index, limit: int = 500) -> list[dict]:  # noqa: ANN001
    r = rag("audit", "--index", str(index), "--limit", str(limit), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["rows"]


def test_questions_are_audited(server, rag) -> None:
    from rag.access import AccessStore

    store = AccessStore(server.index)
    new = store.create_key("auditor", "reader", ["A"])
    store.close()
    q_ok = "How often is the zebrafish fed? (audit)"
    q_refused = "Who painted the Mona Lisa? (audit)"
    with server.client(new.token) as c:
        assert c.post("/v1/ask", json={"question": q_ok}).status_code == 200
        assert c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": q_refused}]}).is_success
        assert c.post("/v1/retrieve", json={"query": "filter pump (audit)"}).status_code == 200
        streamed = {"stream": True, "messages": [{"role": "user", "content": "When is the filter pump cleaned?"}]}
        with c.stream("POST", "/v1/chat/completions", json=streamed) as r:
            assert r.status_code == 200 and "[DONE]" in r.read().decode()
    assert server.client("rag_bogus").post("/v1/ask", json={"question": "x"}).status_code == 401
    deadline = time.monotonic() + 10
    while True:  # rows are written by the server's background writer
        rows = [r for r in _audit(rag, server.index) if r["key_id"] == new.key.id]
        if len(rows) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    by_question = {r["question"]: r for r in rows}
    assert by_question["When is the filter pump cleaned?"]["sources"] == ["pumps.md"]  # written after the stream
    by_route = {r["route"]: r for r in rows}
    ask = by_route["POST /v1/ask"]
    assert ask["question"] == q_ok and ask["sources"] == ["fish.md"] and ask["refused"] is False
    assert ask["status"] == 200 and ask["at"] > 0
    chat = by_question[q_refused]
    assert chat["route"] == "POST /v1/chat/completions" and chat["refused"] is True and chat["sources"] == []
    assert by_route["POST /v1/retrieve"]["sources"][0] == "pumps.md"
    assert any(r["status"] == 401 and r["key_id"] is None for r in _audit(rag, server.index))
    text = rag("audit", "--index", str(server.index), "--limit", "5")
    assert text.returncode == 0 and "POST /v1/" in text.stdout


def test_keys_commands(rag, tmp_path) -> None:
    index = str(tmp_path / "keys-index")
    r = rag("keys", "create", "--index", index, "--name", "ci", "--role", "admin", "--tenant", "A", "--tenant", "B")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("rag_") and len(token) > 40 and "shown only now" in r.stderr
    listed = json.loads(rag("keys", "list", "--index", index, "--json").stdout)["keys"]
    assert len(listed) == 1 and listed[0]["tenants"] == ["A", "B"] and listed[0]["role"] == "admin"
    assert token not in json.dumps(listed)
    import sqlite3

    stored = sqlite3.connect(f"{index}/store.sqlite").execute("SELECT key_hash FROM api_keys").fetchone()[0]
    assert token not in stored and len(stored) == 64
    assert rag("keys", "revoke", listed[0]["id"], "--index", index).returncode == 0
    assert rag("keys", "revoke", listed[0]["id"], "--index", index).returncode == 1
    assert json.loads(rag("keys", "list", "--index", index, "--json").stdout)["keys"][0]["revoked_at"]
    bad = rag("keys", "create", "--index", index, "--name", "x", "--tenant", "../x")
    assert bad.returncode == 1 and "bad tenant name" in bad.stderr
