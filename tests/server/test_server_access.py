"""Keys, roles and tenants: 401/403, and a reader never receives another tenant's text by any route. The tests of
tenants and revocation run on both index backends (`tenant_server`: [embedded], [postgres])."""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = pytest.mark.slow

B_QUESTIONS = [
    "What opens at dawn, and what is cut with saws there?",  # none of B's words: nothing of B may come back
    "When does the volcanic basalt quarry open?",
    "What are basalt columns cut with?",
    "On which day is there blasting in the quarry?",
    "What does the lighthouse keeper wind every evening?",
]


def test_healthz_and_page_need_no_key(server) -> None:
    c = server.client(None)
    assert c.get("/healthz").json() == {"status": "ok"}
    page = c.get("/")
    assert page.status_code == 200 and "<title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/static/app.js").status_code == 200


@pytest.mark.parametrize("key", [None, "rag_not-a-real-key", "Basic abc"])
def test_every_api_route_needs_a_valid_key(server, key) -> None:
    c = server.client(None)
    headers = {"Authorization": key if key and key.startswith("Basic") else f"Bearer {key}"} if key else {}
    for method, path, body in [("GET", "/v1/models", None), ("POST", "/v1/ask", {"question": "zebrafish?"}),
                               ("POST", "/v1/retrieve", {"query": "zebrafish"}),
                               ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
                               ("DELETE", "/v1/documents/fish.md", None), ("GET", "/v1/documents/jobs/x", None)]:
        r = c.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error"]["type"] == "authentication_error"


def test_openai_sdk_sees_401(server) -> None:
    with pytest.raises(openai.AuthenticationError):
        server.openai("rag_wrong").chat.completions.create(model="rag", messages=[{"role": "user", "content": "x"}])


def test_reader_gets_403_on_admin_routes(server) -> None:
    with server.client(server.keys["reader_a"]) as c:
        up = c.post("/v1/documents", files={"files": ("x.md", b"# X\nsome text\n")}, data={"tenant": "A"})
        assert up.status_code == 403 and up.json()["error"]["type"] == "permission_error"
        assert c.delete("/v1/documents/fish.md").status_code == 403
        assert c.get("/v1/documents/jobs/job_x").status_code == 403


def test_revoked_key_is_refused_at_once(tenant_server) -> None:
    store = tenant_server.access()
    try:
        new = store.create_key("short-lived", "reader", ["A"])
        with tenant_server.client(new.token) as c:
            assert c.get("/v1/models").status_code == 200
            assert store.revoke(new.key.id)
            assert c.get("/v1/models").status_code == 401
    finally:
        store.close()


def _stream_body(server, key: str, question: str) -> str:
    with server.client(key) as c, c.stream("POST", "/v1/chat/completions", json={
            "model": "rag", "stream": True, "messages": [{"role": "user", "content": question}]}) as r:
        assert r.status_code == 200
        return r.read().decode()


@pytest.mark.parametrize("question", B_QUESTIONS)
def test_reader_of_a_never_sees_b_or_untenanted_text(tenant_server, no_leak, question) -> None:
    """Every route and every variant (modes, k, filters, history, streaming, errors) over one reader key."""
    server = tenant_server
    key = server.keys["reader_a"]
    bodies: list[str] = []
    with server.client(key) as c:
        chat = {"model": "rag", "messages": [{"role": "user", "content": question}]}
        bodies.append(c.post("/v1/chat/completions", json=chat).text)
        history = {"model": "rag", "messages": [
            {"role": "user", "content": "Tell me about the quarry"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "and what about it?"}]}
        bodies.append(c.post("/v1/chat/completions", json=history).text)
        for mode in ("dense", "keyword", "hybrid"):
            bodies.append(c.post("/v1/ask", json={"question": question, "mode": mode, "k": 50}).text)
            bodies.append(c.post("/v1/retrieve", json={"query": question, "mode": mode, "k": 100}).text)
        bodies.append(c.post("/v1/retrieve", json={"query": question, "filters": ["source=rock.md"]}).text)
        bodies.append(c.post("/v1/ask", json={"question": question, "filters": ["source=*"], "verify": False}).text)
        bodies.append(c.post("/v1/retrieve", json={"query": question, "filters": ["nonsense"]}).text)
        bodies.append(c.delete("/v1/documents/rock.md").text)
    bodies.append(_stream_body(server, key, question))
    for body in bodies:
        no_leak(body)
    # The SDK view of the same conversation
    resp = server.openai(key).chat.completions.create(model="rag", messages=[{"role": "user", "content": question}])
    no_leak(resp.model_dump_json())


def test_the_probe_is_meaningful(tenant_server) -> None:
    """The same questions do reach B's text for B's reader and for a '*' key: the filter is what hides it."""
    server = tenant_server
    with server.client(server.keys["reader_b"]) as c:
        body = c.post("/v1/ask", json={"question": B_QUESTIONS[1]}).json()
        assert "dawn" in body["answer"] and body["citations"][0]["source"] == "rock.md"
        hits = c.post("/v1/retrieve", json={"query": "zebrafish aquarium protocol", "k": 50}).json()
        assert {h["source"] for h in hits} <= {"rock.md"}
        body = c.post("/v1/ask", json={"question": B_QUESTIONS[4]}).json()
        assert body["refused"] and "lighthouse" not in json.dumps(body["contexts"]).lower()
    with server.client(server.keys["admin"]) as c:
        hits = c.post("/v1/retrieve", json={"query": "lighthouse keeper clockwork", "k": 50}).json()
        assert "lighthouse.md" in {h["source"] for h in hits}


def test_tenant_admin_cannot_touch_other_tenants(tenant_server) -> None:
    with tenant_server.client(tenant_server.keys["admin_a"]) as c:
        r = c.post("/v1/documents", files={"files": ("x.md", b"# X\ntext\n")}, data={"tenant": "B"})
        assert r.status_code == 403
        r = c.post("/v1/documents", files={"files": ("x.md", b"# X\ntext\n")})
        assert r.status_code == 202 and r.json()["tenant"] == "A"  # a key of one tenant adds to that tenant
        r = c.delete("/v1/documents/rock.md", params={"tenant": "B"})
        assert r.status_code == 403
        r = c.delete("/v1/documents/rock.md")
        assert r.status_code == 404 and "basalt" not in r.text
        assert json.loads(r.text)["error"]["type"] == "not_found_error"
