"""A real `rag serve` (uvicorn) subprocess on 127.0.0.1 over a small two-tenant index built here; and the same app
in-process (FastAPI's TestClient over `create_app`) for tests that need to reach inside or send many requests.

`server` serves an embedded index; `tenant_server` is the same server on each index backend (`[embedded]`, and
`[postgres]`: the index, keys and audit log in the session's PostgreSQL), for the tests of tenants and keys
(issue 12: every tenant test runs on both backends)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from index_backends import BACKENDS, access_store, backend_env, pg_target

TENANT_A = {
    "fish.md": "# Zebrafish care\n\nThe zebrafish aquarium protocol requires water at 28 degrees Celsius. "
               "Feed the zebrafish twice daily with brine shrimp. The aquarium lights stay on for 14 hours a day.\n",
    "pumps.md": "# Filter pumps\n\nThe aquarium filter pump is cleaned every Monday. A spare pump is kept in "
                "the cabinet under the main zebrafish tank.\n",
}
TENANT_B = {
    "rock.md": "# Quarry operations\n\nThe volcanic basalt quarry opens at dawn. Basalt columns are cut with "
               "diamond wire saws. Blasting in the volcanic basalt quarry happens on Thursdays only.\n",
}
UNTENANTED = {
    "lighthouse.md": "# Lighthouse\n\nThe lighthouse keeper winds the clockwork lamp mechanism every evening.\n",
}
# Words that only tenant B's (or the untenanted) documents contain: a reader of A must never see them.
B_WORDS = ("basalt", "volcanic", "quarry", "blasting", "diamond wire")
UNTENANTED_WORDS = ("lighthouse", "clockwork")
TWO_TENANTS = {"A": TENANT_A, "B": TENANT_B, None: UNTENANTED}  # the served corpus: tenant -> {file name: text}

CONFIG = """
[answer]
llm = "extractive"

[server]
max_request_bytes = 200000
max_question_chars = 500
rate_limit_per_minute = {rate}
auth_failures_per_minute = 1000  # the tests of keys send many bad ones; test_server_hardening tests the limit
answer_timeout = {timeout}

[llm.openai]
timeout = 30.0
max_retries = 0
"""


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT
    index: Path  # the server's --index folder (a postgres index keeps only uploads there)
    log: Path
    keys: dict[str, str]  # role name -> plaintext key
    target: object = None  # the index itself: `index` (embedded) or an ingest.backend.PostgresTarget

    def access(self):  # noqa: ANN201 - rag.access.AccessStore or rag.access.postgres.PgAccessStore
        """The key store the server reads (the caller closes it)."""
        return access_store(self.index if self.target is None else self.target)

    def client(self, key: str | None, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)

    def openai(self, key: str):  # noqa: ANN201 - openai.OpenAI
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)


def in_ci() -> bool:
    """CI is set (to anything but '', 0, false or no) where the suite runs unattended."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """In CI no server test may skip: a missing part of the environment (a browser, a package) is a failure there,
    not a quiet skip. Outside CI a skip stays a skip. (A conftest hook: it applies to tests/server only.)"""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and in_ci() and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reason = reason.removeprefix("Skipped: ")
        rep.outcome = "failed"
        rep.longrepr = f"skipped in CI, where every server test must run: {reason}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def start_server(tmp: Path, index: Path, name: str, rate: int = 200, timeout: float = 60.0,
                 extra: tuple[str, ...] = ("--llm", "extractive"),
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, Path]:
    """Launch `rag serve` on a free loopback port; returns (process, url, log file). `env`: more variables (e.g.
    backend_env(target) for a postgres index)."""
    cfg = tmp / f"{name}.toml"
    cfg.write_text(CONFIG.format(rate=rate, timeout=timeout))
    port = free_port()
    log = tmp / f"{name}.log"
    cmd = [sys.executable, "-m", "rag.cli", "--config", str(cfg), "serve", "--index", str(index),
           "--host", "127.0.0.1", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            env={**server_env(), **(env or {})}, cwd=tmp)
    return proc, f"http://127.0.0.1:{port}", log


def wait_ready(proc: subprocess.Popen, url: str, log: Path, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rag serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"rag serve did not answer /healthz within {limit:.0f}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def write_docs(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


KEYS = {  # the served index's keys: name -> (label, role, tenants)
    "reader_a": ("reader A", "reader", ["A"]), "reader_b": ("reader B", "reader", ["B"]),
    "admin": ("admin", "admin", ["*"]), "admin_a": ("admin of A", "admin", ["A"]),
    "limited": ("rate limited", "reader", ["A"]), "browser": ("browser", "reader", ["A"]),
    "streamer": ("streamer", "reader", ["A"]), "asker": ("asker", "reader", ["A"]),
}


def serve_two_tenants(tmp: Path, target: object, embedder) -> Iterator[Server]:  # noqa: ANN001
    """Keys first (the store exists before the server opens it), then the server starts while the corpus is
    ingested in this process (the server picks up the new index generation on its next search). `target`: an index
    directory, or a PostgresTarget (the server then gets a local folder for its uploads)."""
    from ingest.backend import PostgresTarget

    index = tmp / ("local" if isinstance(target, PostgresTarget) else "index")
    env = backend_env(target)
    proc = None
    try:
        spec = Server("", index, tmp, {}, target)
        store = spec.access()
        try:
            keys = {name: store.create_key(label, role, tenants).token for name, (label, role, tenants) in KEYS.items()}
        finally:
            store.close()
        proc, url, log = start_server(tmp, index, "main", env=env)
        build_index(tmp, embedder, TWO_TENANTS, target)
        wait_ready(proc, url, log)
        yield Server(url, index, log, keys, target)
    finally:
        if proc is not None:
            stop(proc)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[Server]:  # noqa: ANN001
    """`rag serve` over an embedded two-tenant index (see serve_two_tenants)."""
    tmp = tmp_path_factory.mktemp("server")
    yield from serve_two_tenants(tmp, tmp / "index", embedder)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory, embedder, postgres) -> Iterator[Server]:  # noqa: ANN001
    """`rag serve` over the same two-tenant index in PostgreSQL: documents, keys and audit log in one schema."""
    yield from serve_two_tenants(tmp_path_factory.mktemp("pg-server"), pg_target("server"), embedder)


@pytest.fixture(params=BACKENDS)
def tenant_server(request: pytest.FixtureRequest) -> Server:
    """The two-tenant server on each index backend: `server` ([embedded]) or `pg_server` ([postgres])."""
    return request.getfixturevalue("server" if request.param == "embedded" else "pg_server")


@contextmanager
def running(tmp: Path, index: Path, name: str, **kw: object) -> Iterator[tuple[subprocess.Popen, str]]:
    proc, url, log = start_server(tmp, index, name, **kw)  # type: ignore[arg-type]
    try:
        wait_ready(proc, url, log)
        yield proc, url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def launch():  # noqa: ANN201 - the context manager below
    """`with launch(tmp, index, name, timeout=..., extra=(...)) as url:` another server over the same index."""

    @contextmanager
    def run(tmp: Path, index: Path, name: str, **kw: object) -> Iterator[str]:
        with running(tmp, index, name, **kw) as (_, url):
            yield url

    return run


@pytest.fixture(scope="session")
def launch_process():  # noqa: ANN201 - the context manager below
    """`with launch_process(tmp, index, name, ...) as (process, url):` like launch, with the `rag serve` process."""
    return running


@pytest.fixture(scope="session")
def output_dir() -> Path:
    out = Path(os.environ.get("RAG_TEST_OUTPUT", "test-output"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def assert_no_leak(body: str, words: tuple[str, ...] = B_WORDS + UNTENANTED_WORDS) -> None:
    """No distinctive word of another tenant in a response, leaving out the echo of the caller's own question."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        body = json.dumps({k: v for k, v in data.items() if k not in ("question", "query")})
    low = body.lower()
    leaked = [w for w in words if w in low]
    assert not leaked, f"response leaks {leaked}: {body[:500]}"


@pytest.fixture()
def no_leak():  # noqa: ANN201 - the assertion helper
    return assert_no_leak


@dataclass
class InProcess:
    """`create_app` over a real index (extractive answers), driven by FastAPI's TestClient."""

    app: object
    client: object  # fastapi.testclient.TestClient, no key
    rag: object  # rag.api.RAG
    access: object  # rag.access.AccessStore
    index: Path
    keys: dict[str, str]  # reader_a, reader_b, admin
    jobs: list[str] = field(default_factory=list)  # upload jobs a test started, for a later look

    def as_key(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}


def build_index(tmp: Path, embedder, corpora: dict[str | None, dict[str, str]],  # noqa: ANN001
                target: object = None) -> Path:
    """An index of `corpora` ({tenant: {file name: text}}) at tmp/index, ingested here; or, given a PostgresTarget,
    in that schema (tmp/index then stays the server's local folder, for uploads)."""
    from rag import api
    from rag.config import Config

    index = tmp / "index"
    for tenant, docs in corpora.items():
        folder = write_docs(tmp / f"docs-{tenant or 'none'}", docs)
        api.ingest([folder], index if target is None else target, Config(index_dir=index), tenant=tenant,
                   embedder=embedder)
    return index


@contextmanager
def in_process(index: Path, embedder, client_address: str = "testclient", target: object = None,  # noqa: ANN001
               **server: object) -> Iterator[InProcess]:
    """The app over `index` with `server.*` settings overridden (e.g. max_history_chars=100). `target`: a
    PostgresTarget to serve instead of the index directory (`index` then holds only the server's uploads)."""
    from fastapi.testclient import TestClient

    from rag.api import open_pipeline
    from rag.config import Config
    from rag.factory import open_access
    from rag.server import create_app

    pg = {"index.backend": "postgres", "index.dsn_env": target.dsn_env,  # type: ignore[attr-defined]
          "index.pg_schema": target.schema} if target is not None else {}  # type: ignore[attr-defined]
    config = Config(index_dir=index).with_overrides(
        **{"answer.llm": "extractive", **pg, **{f"server.{k}": v for k, v in server.items()}})
    # Each app starts with empty rate-limit windows and no jobs, as a newly started server of its own: the state
    # that server processes share (server.sqlite) is tested in test_server_shared_state.py and test_server_workers.py.
    for leftover in index.glob("server.sqlite*"):
        leftover.unlink()
    access = open_access(config)
    keys = {"reader_a": access.create_key("reader A", "reader", ["A"]).token,
            "reader_b": access.create_key("reader B", "reader", ["B"]).token,
            "admin": access.create_key("admin", "admin", ["*"]).token}
    rag = open_pipeline(config=config, embedder=embedder)
    try:
        app = create_app(rag, access)
        with TestClient(app, raise_server_exceptions=False, client=(client_address, 50000)) as client:
            yield InProcess(app, client, rag, access, index, keys)
    finally:
        rag.close()
        access.close()


@pytest.fixture(scope="session")
def small_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # noqa: ANN001
    """The two-tenant corpus of the served index, built once; tests that write to it copy it first."""
    return build_index(tmp_path_factory.mktemp("small"), embedder, TWO_TENANTS)


@pytest.fixture(scope="session")
def two_tenant_index(embedder):  # noqa: ANN001, ANN201 - the function below
    """`two_tenant_index(tmp, target=None)`: the corpus of `small_index` ingested afresh, at tmp/index or into a
    PostgresTarget (for a test that writes to it)."""

    def run(tmp: Path, target: object = None) -> Path:
        return build_index(tmp, embedder, TWO_TENANTS, target)

    return run


@pytest.fixture()
def app_copy(small_index: Path, tmp_path: Path) -> Path:
    """A private copy of `small_index` for a test that writes (uploads, deletes, keys)."""
    import shutil

    return Path(shutil.copytree(small_index, tmp_path / "index"))


@pytest.fixture(scope="session")
def make_app(embedder):  # noqa: ANN001, ANN201 - the context manager below
    """`with make_app(index, target=None, **server_settings) as ip:` the app in-process over `index` (or over a
    PostgresTarget, see `in_process`)."""

    def run(index: Path, client_address: str = "testclient", target: object = None, **server: object):  # noqa: ANN202
        return in_process(index, embedder, client_address, target, **server)

    return run


@pytest.fixture(scope="session")
def spawn():  # noqa: ANN201 - the function below
    """`proc, url, log = spawn(tmp, index, name, **kw)`: a `rag serve` process, ready; the caller stops it."""

    def run(tmp: Path, index: Path, name: str, **kw: object) -> tuple[subprocess.Popen, str, Path]:
        proc, url, log = start_server(tmp, index, name, **kw)  # type: ignore[arg-type]
        try:
            wait_ready(proc, url, log)
        except BaseException:
            stop(proc)
            raise
        return proc, url, log

    return run
