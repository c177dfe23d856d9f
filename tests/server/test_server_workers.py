"""`rag serve --workers 2` on an embedded index (issue 11): two real uvicorn worker processes share the port and
both serve, an upload job started through one is seen by polls that land on either, the per-key rate limit counts
the requests of both, and stopping the server stops both."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow]

RATE = 60
FISH = "# Zebrafish care\n\nThe zebrafish aquarium protocol requires water at 28 degrees Celsius.\n"
NEW_DOC = b"# Harbour\n\nThe harbour crane of Skerry Island lifts forty tonnes since its refit in 2019.\n"


def _workers(parent: int) -> list[int]:
    """The worker processes uvicorn started (spawned Python interpreters), not multiprocessing's helpers."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_two_worker_processes_share_the_port_jobs_and_limits(tmp_path: Path, embedder, launch_process) -> None:
    from rag import api
    from rag.access import AccessStore
    from rag.config import Config

    index = tmp_path / "index"
    store = AccessStore(index)
    try:
        admin = store.create_key("admin", "admin", ["*"]).token
        limited = store.create_key("limited", "reader", ["A"]).token
        reader = store.create_key("reader", "reader", ["A"]).token
        loaders = [store.create_key(f"load {i}", "reader", ["A"]).token for i in range(4)]  # under RATE each
    finally:
        store.close()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "fish.md").write_text(FISH)
    api.ingest([tmp_path / "docs"], index, Config(), tenant="A", embedder=embedder)

    with launch_process(tmp_path, index, "workers", rate=RATE,
                        extra=("--llm", "extractive", "--workers", "2")) as (proc, url):
        log = tmp_path / "workers.log"
        deadline = time.monotonic() + 120  # both workers loaded (the first answering /healthz is not enough)
        while log.read_text().count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _workers(proc.pid)
        assert len(workers) == 2, (workers, log.read_text()[-2000:])
        time.sleep(0.5)

        # Both workers serve: under concurrent load (a new connection per request) each one's CPU time grows.
        before = {w: _cpu_seconds(w) for w in workers}

        def retrieve(i: int) -> int:
            return httpx.post(f"{url}/v1/retrieve", headers={"Authorization": f"Bearer {loaders[i % 4]}"},
                              json={"query": "zebrafish water temperature", "k": 3}, timeout=60).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(retrieve, range(4 * (RATE - 5))))
        assert codes == [200] * (4 * (RATE - 5))
        grown = {w: _cpu_seconds(w) - before[w] for w in workers}
        assert min(grown.values()) >= 0.05, grown  # an idle worker gains next to nothing

        # An upload job is kept where every worker sees it: each poll (a new connection) finds it.
        auth = {"Authorization": f"Bearer {admin}"}
        r = httpx.post(f"{url}/v1/documents", headers=auth, data={"tenant": "A"},
                       files={"files": ("harbour.md", NEW_DOC)}, timeout=60)
        assert r.status_code == 202, r.text
        job_id, statuses = r.json()["id"], []
        deadline = time.monotonic() + 120
        while (not statuses or statuses[-1] not in ("done", "failed")) and time.monotonic() < deadline:
            with ThreadPoolExecutor(4) as pool:  # concurrent polls, spread over the workers
                polls = list(pool.map(lambda _: httpx.get(f"{url}/v1/documents/jobs/{job_id}", headers=auth,
                                                          timeout=60), range(4)))
            assert [p.status_code for p in polls] == [200] * 4, [p.text for p in polls]
            statuses.append(polls[-1].json()["status"])
            time.sleep(0.2)
        assert statuses[-1] == "done", statuses
        hits = httpx.post(f"{url}/v1/retrieve", headers={"Authorization": f"Bearer {reader}"},
                          json={"query": "How much does the harbour crane lift?", "k": 1}, timeout=60).json()
        assert hits[0]["source"] == "harbour.md", hits

        # One window per key across the workers: 1.5 x RATE concurrent requests, exactly RATE accepted.
        def models(_: int) -> int:
            return httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {limited}"}, timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(models, range(3 * RATE // 2)))
        assert codes.count(200) == RATE and codes.count(429) == RATE // 2, codes
    # Stopping the parent stopped both workers.
    for w in workers:
        assert not Path(f"/proc/{w}").exists() or "zombie" in Path(f"/proc/{w}/status").read_text().lower(), w


def test_workers_fail_at_once_with_a_clear_message(tmp_path: Path, rag_cli) -> None:
    """A taken port or an unusable index fails in the parent, before any worker starts: exit 1 and one line
    naming what was wrong (no worker restarting forever, no exit 0)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = rag_cli.run(["serve", "--index", str(tmp_path / "index"), "--llm", "extractive", "--workers", "2",
                           "--port", str(port)])
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"cannot listen on http://127.0.0.1:{port}" in out.stderr
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("not an index")
    out = rag_cli.run(["serve", "--index", str(not_a_folder), "--llm", "extractive", "--workers", "2",
                       "--port", "0"])
    assert out.returncode == 1 and str(not_a_folder) in out.stderr, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
