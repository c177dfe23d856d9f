"""What the server processes of one embedded index share through its server file (rag.access.serverdb): rate-limit
windows and upload jobs. Separate connections stand for separate processes, and one test uses real processes."""

from __future__ import annotations

import multiprocessing
import stat
import time
from pathlib import Path

from rag.access import serverdb
from rag.access.limits import SqliteRateLimiter
from rag.server.jobs import KEEP_FINISHED_S, SqliteJobs
from rag.server.schemas import Job


def test_two_limiters_over_one_folder_count_one_window(tmp_path: Path) -> None:
    a, b = SqliteRateLimiter(tmp_path, 3, "key"), SqliteRateLimiter(tmp_path, 3, "key")
    try:
        assert [a.check("k1"), b.check("k1"), a.check("k1")] == [0.0, 0.0, 0.0]
        wait = b.check("k1")  # the fourth in the minute, whichever process sees it
        assert 59.0 < wait <= 60.0, wait
        assert a.check("k2") == 0.0  # another key has its own window
        assert b.blocked("k2") == 0.0 and b.blocked("k2") == 0.0  # asking counts nothing
        other = SqliteRateLimiter(tmp_path, 3, "auth")  # another scope has its own windows
        try:
            assert other.check("k1") == 0.0
        finally:
            other.close()
    finally:
        a.close()
        b.close()


def test_hit_counts_and_the_window_slides(tmp_path: Path) -> None:
    a, b = SqliteRateLimiter(tmp_path, 2, "auth", window=1.0), SqliteRateLimiter(tmp_path, 2, "auth", window=1.0)
    try:
        a.hit("10.0.0.1")
        b.hit("10.0.0.1")
        assert a.blocked("10.0.0.1") > 0 and b.check("10.0.0.1") > 0
        time.sleep(1.05)
        assert a.blocked("10.0.0.1") == 0.0 and b.check("10.0.0.1") == 0.0
    finally:
        a.close()
        b.close()


def test_no_limit_opens_no_file(tmp_path: Path) -> None:
    lim = SqliteRateLimiter(tmp_path / "index", 0, "key")
    assert [lim.check("k") for _ in range(5)] == [0.0] * 5 and lim.blocked("k") == 0.0
    lim.close()
    assert not (tmp_path / "index" / serverdb.SERVER_FILE).exists()


def _send(folder: str, n: int, out: multiprocessing.Queue) -> None:
    lim = SqliteRateLimiter(folder, 25, "key")
    out.put(sum(lim.check("shared") == 0.0 for _ in range(n)))
    lim.close()


def test_processes_racing_on_one_key_accept_exactly_the_limit(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_send, args=(str(tmp_path), 20, out)) for _ in range(3)]
    for p in procs:
        p.start()
    accepted = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sum(accepted) == 25, accepted  # 60 requests from three processes, 25 a minute allowed


def test_jobs_are_seen_and_updated_through_another_connection(tmp_path: Path) -> None:
    a, b = SqliteJobs(tmp_path), SqliteJobs(tmp_path)
    try:
        job = Job("job_1", "A", ["a.md", "b.pdf"])
        a.add(job)
        seen = b.get("job_1")
        assert seen is not None and seen.to_dict() == job.to_dict()
        job.status, job.finished, job.report = "done", time.time(), {"added": 2, "failed": []}
        b.update(job)
        again = a.get("job_1")
        assert again is not None and again.to_dict() == job.to_dict()
        assert a.get("job_2") is None
    finally:
        a.close()
        b.close()


def test_old_finished_jobs_are_dropped_and_the_file_is_private(tmp_path: Path) -> None:
    jobs = SqliteJobs(tmp_path)
    try:
        old = Job("job_old", None, ["x.md"], status="done", created=0.0, finished=time.time() - KEEP_FINISHED_S - 1)
        running = Job("job_running", None, ["y.md"], status="running", created=0.0)
        jobs.update(old)
        jobs.update(running)
        jobs.add(Job("job_new", None, ["z.md"]))
        assert jobs.get("job_old") is None
        assert jobs.get("job_running") is not None and jobs.get("job_new") is not None
    finally:
        jobs.close()
    assert stat.S_IMODE((tmp_path / serverdb.SERVER_FILE).stat().st_mode) == 0o600


def _start_job_and_exit(folder: str) -> None:
    SqliteJobs(folder).add(Job("job_orphan", "A", ["a.md"], status="running"))


def test_a_job_whose_process_is_gone_is_reported_failed(tmp_path: Path) -> None:
    """A server process killed in the middle of an ingest leaves its job running: any process reading it later
    reports it failed (and records that), while a job of a live process stays running."""
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=_start_job_and_exit, args=(str(tmp_path),))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    jobs = SqliteJobs(tmp_path)
    try:
        job = jobs.get("job_orphan")
        assert job is not None and job.status == "failed" and "stopped before it finished" in job.error, job
        assert job.finished is not None
        jobs.add(Job("job_live", "A", ["b.md"], status="running"))
        live = SqliteJobs(tmp_path)
        try:
            assert live.get("job_live").status == "running"  # type: ignore[union-attr]
            assert live.get("job_orphan").status == "failed"  # type: ignore[union-attr] - recorded
        finally:
            live.close()
    finally:
        jobs.close()
