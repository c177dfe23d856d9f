"""Replicas: two real `rag serve` processes on different ports over one index: one PostgreSQL index (each server with
its own local folder, issue 12), or one embedded index folder (what `[server] workers` and servers started apart
share, issue 11). A document uploaded through one is answerable through the other within a second, its upload job
is visible from either, a revoked key is refused by both, and a per-key rate limit holds across both (the sum of
their accepted requests is the limit). The key is revoked with `rag keys revoke` on the shared key store, because
no HTTP route revokes keys (the server's API creates none and revokes none)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from index_backends import backend_env, pg_target

pytestmark = [pytest.mark.slow]

RATE = 100  # requests a minute per key on each replica's config (the admin's polling stays under it); together
# the replicas must still accept only this many of one key's requests
FISH = {"fish.md": "# Zebrafish care\n\nThe zebrafish aquarium protocol requires water at 28 degrees Celsius.\n"}
NEW_DOC = b"# Harbour\n\nThe harbour crane of Skerry Island lifts forty tonnes since its refit in 2019.\n"


def _wait_job(c: httpx.Client, job_id: str, limit: float = 120.0) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job = c.get(f"/v1/documents/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.25)
    raise AssertionError(f"ingest job {job_id} did not finish in {limit}s")


def _shared_index(backend: str, request: pytest.FixtureRequest, tmp_path: Path, embedder: Any,
                  monkeypatch: pytest.MonkeyPatch) -> tuple[list[Path], list[str], dict[str, str], dict]:
    """The index both replicas serve, its keys made and tenant A's fish.md ingested: each replica's --index
    folder, the `rag` options that reach the index, the environment they need, and the keys (name -> NewKey)."""
    from rag import api
    from rag.config import Config

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "fish.md").write_text(FISH["fish.md"])
    names = {"admin": ("admin", ["*"]), "reader": ("reader", ["A"]), "doomed": ("reader", ["A"]),
             "limited": ("reader", ["A"])}
    if backend == "postgres":
        from rag.access.postgres import PgAccessStore

        request.getfixturevalue("postgres")
        target: Any = pg_target("replicas")
        env = backend_env(target)
        for name, value in env.items():  # the replicas (and the rag commands below) read their index from these
            monkeypatch.setenv(name, value)
        access: Any = PgAccessStore(target)
        folders, cli = [tmp_path / "local-a", tmp_path / "local-b"], []
    else:
        from rag.access import AccessStore

        target = tmp_path / "index"
        access, env = AccessStore(target), {}
        folders, cli = [target, target], ["--index", str(target)]
    try:
        keys = {name: access.create_key(name, role, tenants) for name, (role, tenants) in names.items()}
    finally:
        access.close()
    api.ingest([folder], target, Config(), tenant="A", embedder=embedder)
    return folders, cli, env, keys


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
def test_two_replicas_share_documents_jobs_keys_and_rate_limits(backend: str, request: pytest.FixtureRequest,
                                                               tmp_path: Path, embedder, launch, monkeypatch,
                                                               rag_cli) -> None:
    folders, cli, env, keys = _shared_index(backend, request, tmp_path, embedder, monkeypatch)
    _exercise_replicas(tmp_path, folders, cli, env, keys, launch, rag_cli)


def _exercise_replicas(tmp_path: Path, folders: list[Path], cli: list[str], env: dict[str, str], keys: dict,
                       launch: Any, rag_cli: Any) -> None:
    admin, reader, limited = keys["admin"].token, keys["reader"].token, keys["limited"].token
    doomed = keys["doomed"]
    with launch(tmp_path, folders[0], "replica-a", rate=RATE) as url_a, \
            launch(tmp_path, folders[1], "replica-b", rate=RATE) as url_b:
        auth = {"Authorization": f"Bearer {admin}"}
        # 1. Upload through A; the job is visible through B; B answers from the new document at once.
        with httpx.Client(base_url=url_a, headers=auth, timeout=60) as a, \
                httpx.Client(base_url=url_b, headers=auth, timeout=60) as b:
            r = a.post("/v1/documents", data={"tenant": "A"}, files={"files": ("harbour.md", NEW_DOC)})
            assert r.status_code == 202, r.text
            job = _wait_job(b, r.json()["id"])  # polled on the other replica
            assert job["status"] == "done" and job["files"] == ["harbour.md"], job
            done = time.monotonic()
            found = False
            while not found and time.monotonic() - done < 1.0:
                hits = b.post("/v1/retrieve", json={"query": "How much does the harbour crane lift?", "k": 3}).json()
                found = bool(hits) and hits[0]["source"] == "harbour.md"
                time.sleep(0.05)
            assert found, f"replica B did not find the document uploaded through A within a second: {hits}"
            answer = b.post("/v1/ask", json={"question": "How many tonnes does the harbour crane lift?"}).json()
            assert "forty" in answer["answer"] and answer["citations"][0]["source"] == "harbour.md", answer

        # 2. A key revoked (`rag keys revoke`, on the shared database) is refused by both replicas.
        for url in (url_a, url_b):
            assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {doomed.token}"}).status_code == 200
        out = rag_cli.run(["keys", "revoke", doomed.key.id, "--json", *cli], extra_env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        for url in (url_a, url_b):
            r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {doomed.token}"})
            assert r.status_code == 401, (url, r.text)

        # 3. The rate limit counts the requests of both replicas: 1.5 x RATE requests, alternating, RATE accepted.
        codes = []
        for i in range(3 * RATE // 2):
            url = (url_a, url_b)[i % 2]
            codes.append(httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {limited}"}).status_code)
        assert codes.count(200) == RATE and codes.count(429) == RATE // 2, codes
        assert codes[:RATE] == [200] * RATE

        # A reader of A still reads through both, and the audit log (one table) holds both replicas' rows.
        for url in (url_a, url_b):
            r = httpx.post(f"{url}/v1/retrieve", headers={"Authorization": f"Bearer {reader}"},
                           json={"query": "zebrafish water temperature", "k": 2})
            assert r.status_code == 200 and r.json()[0]["source"] == "fish.md"
    out = rag_cli.run(["audit", "--json", "--limit", "1000", *cli], extra_env=env)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    refused = [r for r in rows if r["route"] == "GET /v1/models"]  # GETs are audited when refused
    assert sorted({r["status"] for r in refused}) == [401, 429] and len(refused) == RATE // 2 + 2, refused
    assert {r["route"] for r in rows} >= {"POST /v1/documents", "POST /v1/retrieve", "POST /v1/ask"}
