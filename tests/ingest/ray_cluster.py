"""A real Ray cluster on this machine for tests and benchmarks: a head and more nodes, each a `ray start --block`
process in its own process group, stopped by those groups (no `ray stop`, which would stop every Ray process on the
machine, other people's too). Token authentication with a token of its own: `client_env` is what a driver needs."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 600.0  # a loaded 2-core machine needs ~20-60 s per node
STOP_GRACE_S = 60.0
PROCESS_TOKEN = secrets.token_hex(32)


class LocalRayCluster:
    """`nodes` Ray nodes of `cpus` CPUs each; `address` is the head's HOST:PORT. `worker_gpus`: GPUs each node but
    the head declares (Ray takes the count as given, so a machine without GPUs can test how GPU actors are placed)."""

    def __init__(self, nodes: int = 2, cpus: int = 1, object_store_mb: int = 100, worker_gpus: int = 0) -> None:
        self.nodes, self.cpus, self.object_store_mb, self.worker_gpus = nodes, cpus, object_store_mb, worker_gpus
        self.address = ""
        self.start_seconds = 0.0
        self._procs: list[subprocess.Popen[bytes]] = []
        self._tmp = ""
        self._ray = str(Path(sys.executable).with_name("ray"))
        # Ray reads the token from the environment before ~/.ray/auth_token: nothing of the user's is used or made.
        # A driver reads it once per process, so every cluster this process starts has the same one.
        self.client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": PROCESS_TOKEN,
                           "RAY_USAGE_STATS_ENABLED": "0"}
        self._env = {**os.environ, **self.client_env}

    def __enter__(self) -> LocalRayCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        t = time.perf_counter()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        self._tmp = tempfile.mkdtemp(prefix="rag-ray-")  # short: Ray's socket paths must fit in 107 bytes
        common = ["--num-cpus", str(self.cpus), "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                  "--object-store-memory", str(self.object_store_mb * 2**20), "--block"]
        self._spawn(["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", self._tmp, "--num-gpus",
                     "0", *common])
        self._wait_for(1)
        for _ in range(self.nodes - 1):
            self._spawn(["--address", self.address, "--num-gpus", str(self.worker_gpus), *common])
        self._wait_for(self.nodes)
        self.start_seconds = time.perf_counter() - t

    def _spawn(self, args: list[str]) -> None:
        log = open(Path(self._tmp) / f"ray-start-{len(self._procs)}.log", "wb")  # noqa: SIM115 - kept with the process
        self._procs.append(subprocess.Popen([self._ray, "start", *args], stdout=log, stderr=subprocess.STDOUT,
                                            env=self._env, start_new_session=True))

    def _wait_for(self, nodes: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        out = ""
        while time.monotonic() < deadline:
            dead = [p.args for p in self._procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a Ray node exited while starting: {dead}; logs in {self._tmp}")
            done = subprocess.run([self._ray, "status", "--address", self.address], capture_output=True, text=True,
                                  env=self._env, check=False)
            out = done.stdout + done.stderr
            if done.returncode == 0 and len(re.findall(r"^\s*\d+ node_", out, re.MULTILINE)) >= nodes:
                return
            time.sleep(2)
        raise RuntimeError(f"the Ray cluster did not reach {nodes} node(s) within {START_TIMEOUT_S:g} s: {out[-2000:]}")

    def stop(self) -> None:
        """SIGTERM to each node's process group (`ray start --block` stops its processes), SIGKILL after a grace."""
        for p in reversed(self._procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in reversed(self._procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(1.0, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # whatever of that group is left
        self._procs = []
        marker = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # `ray start --head` notes itself here
        with contextlib.suppress(OSError):
            if self.address and marker.read_text().strip().endswith(":" + self.address.rsplit(":", 1)[1]):
                marker.unlink()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
