"""Upload jobs: in the index directory's server file (embedded index: every server process of the folder sees them),
or in PostgreSQL, where every replica sees every job. MemoryJobs keeps them in one process (for tests)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from rag.access import serverdb
from rag.server.schemas import Job

KEEP_FINISHED_S = 7 * 24 * 3600.0  # finished jobs older than this are dropped from the server file


class Jobs(Protocol):
    """Where upload jobs are kept while they run and after."""

    def add(self, job: Job) -> None: ...

    def get(self, job_id: str) -> Job | None: ...

    def update(self, job: Job) -> None: ...


class MemoryJobs:
    """Jobs of this process only."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def add(self, job: Job) -> None:
        self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def update(self, job: Job) -> None:
        self._jobs[job.id] = job


class SqliteJobs:
    """Jobs in the upload_jobs table of the index directory's server file (rag.access.serverdb). Each job keeps the
    process that runs it: a job still queued or running when that process is gone (killed, restarted) is reported
    failed rather than left running forever."""

    def __init__(self, index_dir: str | Path) -> None:
        self._db = serverdb.connect(index_dir)
        self._lock = threading.Lock()
        self._owner = serverdb.process_key(os.getpid())

    def add(self, job: Job) -> None:
        with self._lock:
            self._db.execute("DELETE FROM upload_jobs WHERE finished IS NOT NULL AND finished < ?",
                             (time.time() - KEEP_FINISHED_S,))
        self.update(job)

    def update(self, job: Job) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO upload_jobs(id, tenant, files, status, created, finished, report, error, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                "finished = excluded.finished, report = excluded.report, error = excluded.error",
                (job.id, job.tenant, json.dumps(list(job.files)), job.status, job.created, job.finished,
                 None if job.report is None else json.dumps(job.report, default=str), job.error, self._owner))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT id, tenant, files, status, created, finished, report, error, owner "
                                   "FROM upload_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        job = Job(id=row[0], tenant=row[1], files=list(json.loads(row[2])), status=row[3], created=row[4],
                  finished=row[5], report=None if row[6] is None else json.loads(row[6]), error=row[7])
        owner = row[8]
        if job.status in ("queued", "running") and owner and serverdb.process_key(int(owner.split(":")[0])) != owner:
            job.status, job.finished = "failed", time.time()
            job.error = "the server process running this job stopped before it finished; upload the files again"
            with self._lock:
                self._db.execute("UPDATE upload_jobs SET status = ?, finished = ?, error = ? WHERE id = ? AND status = ?",
                                 (job.status, job.finished, job.error, job.id, row[3]))
        return job

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PgJobs:
    """Jobs in the upload_jobs table of the index's schema (rag.access.postgres)."""

    def __init__(self, target: Any) -> None:
        from rag.access.postgres import open_shared

        self._db = open_shared(target, "rag-jobs")
        self._lock = threading.Lock()

    def add(self, job: Job) -> None:
        self.update(job)

    def update(self, job: Job) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO upload_jobs(id, tenant, files, status, created, finished, report, error) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                "finished = excluded.finished, report = excluded.report, error = excluded.error",
                (job.id, job.tenant, list(job.files), job.status, job.created, job.finished,
                 None if job.report is None else json.dumps(job.report, default=str), job.error))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT id, tenant, files, status, created, finished, report, error "
                                   "FROM upload_jobs WHERE id = %s", (job_id,)).fetchone()
        if row is None:
            return None
        return Job(id=row[0], tenant=row[1], files=list(row[2]), status=row[3], created=row[4], finished=row[5],
                   report=row[6], error=row[7])

    def close(self) -> None:
        with self._lock:
            self._db.close()
