"""The tenant campaign (issue 9): for 60 s one admin adds, updates and deletes documents of two tenants through a
real `rag serve` while 8 readers of each tenant query it (/v1/retrieve, /v1/ask, streamed /v1/chat/completions,
extractive answers). Every returned chunk is checked by its source name and by its tenant's secret string, and
every response body for the other tenant's secret: 0 errors and 0 cross-tenant text are required.

On both index backends: [embedded] for RAG_CAMPAIGN_SECONDS (60 by default); [postgres] (documents, keys, audit
log and upload jobs in the session's PostgreSQL) for a third of that, 20 s by default, to keep the whole suite
within its time budget in CI: the same writer and readers, so the same kinds of races, only fewer of them.
The figures go to the test log and to test-output/campaign-tenants.json (campaign-tenants-postgres.json).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest
import tenant_probe as probe
from index_backends import access_store, backend_env, pg_target

pytestmark = [pytest.mark.campaign, pytest.mark.slow]
READERS_PER_TENANT = 8
SECONDS = float(os.environ.get("RAG_CAMPAIGN_SECONDS", "60"))
DURATION = {"embedded": SECONDS, "postgres": SECONDS / 3}


class AdminWriter:
    """Adds, updates and deletes documents of both tenants over HTTP, one at a time, until told to stop."""

    def __init__(self, url: str, key: str, rnd: random.Random, docs: dict[str, dict[str, int]]) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        self.rnd, self.docs = rnd, docs
        self.next = 100
        self.plan: list[str] = []
        self.ops: dict[str, int] = {"add": 0, "update": 0, "delete": 0}
        self.errors: list[str] = []

    def upload(self, tenant: str, name: str) -> None:
        version = self.docs[tenant].get(name, 0) + 1
        files = {"files": (name, probe.doc_text(tenant, name, version).encode())}
        r = self.client.post("/v1/documents", data={"tenant": tenant}, files=files)
        if r.status_code != 202:
            self.errors.append(f"upload {tenant}/{name}: {r.status_code} {r.text[:200]}")
            return
        job_id = r.json()["id"]
        deadline = time.monotonic() + 120
        while (job := self.client.get(f"/v1/documents/jobs/{job_id}").json())["status"] not in ("done", "failed"):
            if time.monotonic() > deadline:
                self.errors.append(f"upload {tenant}/{name}: job {job_id} still {job['status']} after 120 s")
                return
            time.sleep(0.05)
        if job["status"] != "done":
            self.errors.append(f"upload {tenant}/{name}: job {job}")
            return
        self.docs[tenant][name] = version

    def step(self) -> None:
        """The next change: each three in a row hold one add, one update and one delete, in random order."""
        if not self.plan:
            self.plan = self.rnd.sample(["add", "update", "delete"], 3)
        op = self.plan.pop()
        tenant = self.rnd.choice(["A", "B"])
        if op == "delete" and len(self.docs[tenant]) < 2:
            op = "add"
        if op == "add":
            self.next += 1
            self.upload(tenant, probe.doc_name(tenant, self.next))
        elif op == "update":
            self.upload(tenant, self.rnd.choice(sorted(self.docs[tenant])))
        else:
            name = self.rnd.choice(sorted(self.docs[tenant]))
            r = self.client.delete(f"/v1/documents/{name}", params={"tenant": tenant})
            if r.status_code != 200 or r.json()["removed"] != [name]:
                self.errors.append(f"delete {tenant}/{name}: {r.status_code} {r.text[:200]}")
            else:
                del self.docs[tenant][name]
        self.ops[op] += 1


def _reader(url: str, key: str, tenant: str, seed: int, stop: threading.Event, tally: probe.Tally) -> None:
    rnd = random.Random(seed)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        while not stop.is_set():
            route = rnd.choice(["retrieve", "ask", "stream"])
            question = rnd.choice(probe.QUESTIONS)
            tally.count(route)
            try:
                if route == "retrieve":
                    r = c.post("/v1/retrieve", json={"query": question, "k": rnd.randint(1, 20),
                                                     "mode": rnd.choice(["dense", "keyword", "hybrid"])})
                    body = r.text
                    if r.status_code == 200:
                        probe.check_retrieve(tally, tenant, r.json())
                elif route == "ask":
                    r = c.post("/v1/ask", json={"question": question, "k": rnd.randint(1, 10)})
                    body = r.text
                    if r.status_code == 200:
                        probe.check_answer(tally, tenant, r.json())
                else:
                    chat = {"stream": True, "messages": [{"role": "user", "content": question}]}
                    with c.stream("POST", "/v1/chat/completions", json=chat) as r:
                        body = r.read().decode()
                    if r.status_code == 200 and not probe.check_stream(tally, tenant, body):
                        tally.errors.append("a stream did not end with [DONE]")
                if r.status_code != 200:
                    tally.errors.append(f"{route}: {r.status_code} {body[:200]}")
                probe.check_text(tally, tenant, route, body)
            except Exception as e:  # a transport failure is an error of the campaign, not of the test code
                tally.errors.append(f"{route}: {type(e).__name__}: {e}")


def test_tenant_campaign(backend: str, embedder, spawn, tmp_path: Path, output_dir: Path) -> None:
    from rag import api
    from rag.config import Config

    seed = int(os.environ.get("RAG_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"campaign seed: {seed}")
    seconds = DURATION[backend]
    index = tmp_path / "index"  # the server's --index folder; the index itself on the embedded backend
    target = index if backend == "embedded" else pg_target("campaign")
    docs: dict[str, dict[str, int]] = {"A": {}, "B": {}}
    for tenant in ("A", "B"):
        folder = tmp_path / "docs" / tenant
        folder.mkdir(parents=True)
        for name in (probe.SHARED, probe.doc_name(tenant, 1), probe.doc_name(tenant, 2)):
            (folder / name).write_text(probe.doc_text(tenant, name, 1))
            docs[tenant][name] = 1
        api.ingest([folder], target, Config(index_dir=index), tenant=tenant, embedder=embedder)
    store = access_store(target)
    admin = store.create_key("campaign admin", "admin", ["*"]).token
    readers = [(t, store.create_key(f"reader {t}{i}", "reader", [t]).token) for t in ("A", "B")
               for i in range(READERS_PER_TENANT)]
    store.close()

    proc, url, log = spawn(tmp_path, index, "campaign", rate=0, timeout=120.0, env=backend_env(target))
    stop = threading.Event()
    tallies = [probe.Tally() for _ in readers]
    threads = [threading.Thread(target=_reader, args=(url, key, tenant, seed + i, stop, tallies[i]), daemon=True)
               for i, (tenant, key) in enumerate(readers)]
    writer = AdminWriter(url, admin, random.Random(seed), docs)
    try:
        for t in threads:
            t.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds or sum(writer.ops.values()) < 3:  # at least one change of each kind
            writer.step()
        elapsed = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(150)
        assert not any(t.is_alive() for t in threads), "a reader hung"
        alive = proc.poll() is None
    finally:
        stop.set()
        writer.client.close()
        proc.terminate()
        try:
            proc.wait(30)
        except Exception:
            proc.kill()
            proc.wait(5)
    total = probe.Tally()
    for t in tallies:
        total.merge(t)
    summary = {"backend": backend, "seed": seed, "seconds": round(elapsed, 1), "readers": len(readers),
               "writer_ops": writer.ops, "writer_errors": len(writer.errors), **total.summary()}
    print("tenant campaign:", json.dumps(summary))
    name = "campaign-tenants.json" if backend == "embedded" else f"campaign-tenants-{backend}.json"
    (output_dir / name).write_text(json.dumps(summary, indent=2))
    assert alive, f"rag serve died during the campaign:\n{log.read_text()[-3000:]}"
    assert not writer.errors, writer.errors[:5]
    assert not total.errors, total.errors[:5]
    assert not total.leaks, total.leaks[:5]
    assert sum(writer.ops.values()) >= 3 and all(writer.ops.values()), writer.ops
    assert total.summary()["requests"] >= 3 * len(readers) and total.with_own_text > 0
    assert "Traceback" not in log.read_text(errors="replace")
