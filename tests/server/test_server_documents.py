"""Uploads and removals by an admin: ingest runs in the background while other clients keep asking."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.slow

GLACIER = ("# Glacier survey\n\n" + "The glacier ice core drilling team works at the northern camp. "
           "Ice cores are stored at minus 30 degrees in the freezer container. " * 3 + "\n")


def _wait_job(c: httpx.Client, job_id: str, limit: float = 90.0) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job = c.get(f"/v1/documents/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"ingest job {job_id} did not finish in {limit}s")


def test_upload_while_others_keep_asking(server) -> None:
    results: list[tuple[int, float]] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with server.client(server.keys["asker"]) as c:
            while not stop.is_set() and len(results) < 150:
                r = c.post("/v1/ask", json={"question": "How often is the zebrafish fed?"})
                results.append((r.status_code, time.monotonic()))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        time.sleep(0.5)
        with server.client(server.keys["admin"]) as c:
            t0 = time.monotonic()
            r = c.post("/v1/documents", data={"tenant": "A", "tags": ["survey"]},
                       files=[("files", ("../../glacier notes.md", GLACIER.encode())),
                              ("files", ("camp.txt", b"The northern camp has a radio mast and a generator shed.\n"))])
            assert r.status_code == 202, r.text
            job = r.json()
            assert job["status"] in ("queued", "running") and job["files"] == ["glacier_notes.md", "camp.txt"]
            done = _wait_job(c, job["id"])
            t1 = time.monotonic()
    finally:
        stop.set()
        asker.join(60)
    assert done["status"] == "done", done
    assert sorted(done["report"]["added_files"]) == ["camp.txt", "glacier_notes.md"]
    during = [s for s, t in results if t0 <= t <= t1]
    assert results and all(s == 200 for s, _ in results), results
    assert during, "no question was answered while the ingest ran"
    # the sanitised name landed in the server's upload folder, nowhere else
    assert (server.index / "uploads" / "A" / "glacier_notes.md").is_file()
    assert not list(server.index.parent.glob("glacier*"))
    with server.client(server.keys["reader_a"]) as c:
        body = c.post("/v1/ask", json={"question": "At what temperature are the ice cores stored?"}).json()
    assert "minus 30" in body["answer"] and body["citations"][0]["source"] == "glacier_notes.md"
    with server.client(server.keys["reader_b"]) as c:
        hits = c.post("/v1/retrieve", json={"query": "glacier ice core drilling", "k": 50}).json()
    assert "glacier_notes.md" not in {h["source"] for h in hits}

    with server.client(server.keys["admin"]) as c:
        assert c.delete("/v1/documents/glacier_notes.md").status_code == 404  # not a document without tenant
        r = c.delete("/v1/documents/glacier_notes.md", params={"tenant": "A"})
        assert r.status_code == 200 and r.json()["removed"] == ["glacier_notes.md"]
        assert c.delete("/v1/documents/glacier_notes.md", params={"tenant": "A"}).status_code == 404
    assert not (server.index / "uploads" / "A" / "glacier_notes.md").exists()
    with server.client(server.keys["reader_a"]) as c:
        hits = c.post("/v1/retrieve", json={"query": "glacier ice core drilling", "k": 50}).json()
    assert "glacier_notes.md" not in {h["source"] for h in hits}


def test_bad_uploads_are_refused_with_a_reason(server) -> None:
    with server.client(server.keys["admin"]) as c:
        r = c.post("/v1/documents", files={"files": ("tool.exe", b"MZ...")}, data={"tenant": "A"})
        assert r.status_code == 400 and "unsupported file type" in r.json()["error"]["message"]
        r = c.post("/v1/documents", files={"files": ("x.md", b"# x\n")}, data={"tenant": "../etc"})
        assert r.status_code == 400 and "bad tenant name" in r.json()["error"]["message"]
        r = c.post("/v1/documents", data={"tenant": "A"})
        assert r.status_code == 422 and "files" in r.json()["error"]["message"]
        assert c.get("/v1/documents/jobs/job_missing").status_code == 404


def test_tenants_may_hold_documents_of_the_same_name(tenant_server) -> None:
    """fish.md of tenant A stays A's when tenant B uploads its own fish.md (once a 409 that told B the name was
    taken, or, through the CLI, a silent replacement of A's document). On both index backends."""
    server = tenant_server
    with server.client(server.keys["admin"]) as c:
        r = c.post("/v1/documents", data={"tenant": "B"},
                   files={"files": ("fish.md", b"# Fish\nThe carp pond of tenant B is drained every October.\n")})
        assert r.status_code == 202, r.text
        assert _wait_job(c, r.json()["id"])["status"] == "done"
    with server.client(server.keys["reader_b"]) as c:
        hits = c.post("/v1/retrieve", json={"query": "When is the carp pond drained?", "k": 50}).json()
        assert any(h["source"] == "fish.md" and "October" in h["text"] for h in hits)
        assert not any("zebrafish" in h["text"].lower() for h in hits)
    with server.client(server.keys["reader_a"]) as c:
        hits = c.post("/v1/retrieve", json={"query": "How often is the zebrafish fed? carp pond", "k": 50}).json()
        fish = [h for h in hits if h["source"] == "fish.md"]
        assert fish and not any("October" in h["text"] for h in hits)
