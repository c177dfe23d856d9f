"""Load on the HTTP server (run by hand; prints figures).

    python bench/serve.py [--corpus lecture] [--levels 1 10 50] [--requests 200] [--ask-requests 100] [--threads N]
                          [--workers 1 2] [--rounds 1] [--client python|ab]

Builds (or reuses) an index of corpora/CORPUS under .rag/bench/, starts `rag serve --llm extractive` on a
free 127.0.0.1 port, and for each number of concurrent clients sends a bounded number of requests to
/v1/retrieve and then /v1/ask (coroutines, one connection each, the corpus's dev questions in turn).
Prints p50/p99 latency, throughput and errors per level, then stops the server. With several --workers values
the servers (server.workers processes each) are measured in turn, `--rounds` times (A B A B), in one run.
The server runs without a per-key rate limit (one key sends everything); the cost of the shared limit's check
(SQLite, in the index folder) is printed apart. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
[answer]
llm = "extractive"

[server]
rate_limit_per_minute = 0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_level(url: str, key: str, route: str, questions: list[str], clients: int, requests: int,
              max_seconds: float) -> dict[str, float]:
    """`requests` requests shared by `clients` concurrent clients (stopping early at max_seconds): coroutines on one
    event loop, each with its own connection, so that the load generator (on the same cores as the server) spends
    as little CPU as it can; threads cost it about twice as much per request."""
    return asyncio.run(_level(url, key, route, questions, clients, requests, max_seconds))


async def _level(url: str, key: str, route: str, questions: list[str], clients: int, requests: int,
                 max_seconds: float) -> dict[str, float]:
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
            while time.monotonic() < deadline:
                i = next(counter)
                if i >= requests:
                    return
                q = questions[i % len(questions)]
                body = {"query": q} if route == "/v1/retrieve" else {"question": q}
                t = time.perf_counter()
                try:
                    r = await c.post(route, json=body)
                    ok, why = r.status_code == 200, f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as e:
                    ok, why = False, f"{type(e).__name__}: {e}"
                dt = time.perf_counter() - t
                (latencies.append(dt) if ok else errors.append(why))

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    done = len(latencies) + len(errors)
    if errors:
        print(f"    first error: {errors[0]}")
    return {"clients": clients, "requests": done, "errors": len(errors), "seconds": wall,
            "rps": done / wall if wall else 0.0,
            "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
            "p99_ms": 1000 * percentile(latencies, 0.99) if latencies else float("nan")}


def run_ab(url: str, key: str, route: str, question: str, clients: int, requests: int) -> dict[str, float]:
    """The same level through ApacheBench (`ab`, Debian's apache2-utils: C, one thread, keep-alive), which takes
    far less of the shared cores than Python clients do. It sends one body, so one question, every time."""
    body = {"query": question} if route == "/v1/retrieve" else {"question": question}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(body, f)
        f.flush()
        out = subprocess.run(["ab", "-q", "-k", "-c", str(clients), "-n", str(requests), "-p", f.name,
                              "-T", "application/json", "-H", f"Authorization: Bearer {key}", url + route],
                             capture_output=True, text=True, check=True).stdout

    def field(pattern: str) -> float:
        m = re.search(pattern, out, re.MULTILINE)
        return float(m.group(1)) if m else 0.0

    # ab counts a body whose length differs from the first one as failed ("Length"): answers differ in length
    # (their timings), so only connect, receive and exception failures and non-2xx statuses are errors.
    failed = int(sum(field(rf"{kind}: (\d+)") for kind in ("Connect", "Receive", "Exceptions"))
                 + field(r"^Non-2xx responses:\s+(\d+)"))
    return {"clients": clients, "requests": int(field(r"^Complete requests:\s+(\d+)")), "errors": failed,
            "seconds": field(r"^Time taken for tests:\s+([\d.]+)"), "rps": field(r"^Requests per second:\s+([\d.]+)"),
            "p50_ms": field(r"^\s+50%\s+(\d+)"), "p99_ms": field(r"^\s+99%\s+(\d+)")}


LIMIT_CHECK = """
import statistics, sys, time
from rag.access.limits import SqliteRateLimiter
lim = SqliteRateLimiter(sys.argv[1], 120, "bench")
times = []
for _ in range(2000):
    t = time.perf_counter()
    lim.check("bench-key")
    times.append(time.perf_counter() - t)
lim.close()
print(1e6 * statistics.median(times))
"""


def limit_check_us(index: Path, env: dict[str, str]) -> float:
    """Median microseconds of one shared rate-limit check at the default limit, its window full (in a child: this
    script's folder would shadow the `ingest` package)."""
    out = subprocess.run([sys.executable, "-c", LIMIT_CHECK, str(index)], check=True, env=env, cwd=ROOT,
                         capture_output=True, text=True)
    return float(out.stdout.strip())


def measure(index: Path, key: str, questions: list[str], workers: int, args: argparse.Namespace,
            env: dict[str, str]) -> list[dict[str, float]]:
    """Start a server with `workers` processes, run every route and level, stop it."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(CONFIG)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--config", str(cfg), "serve", "--index", str(index),
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start:\n{(Path(tmp) / 'server.log').read_text()[-2000:]}")
                time.sleep(0.3)
            time.sleep(2.0 * (workers - 1))  # the other workers finish loading their models
            run_level(url, key, "/v1/ask", questions, 2 * workers, 10 * workers, 30)  # warm-up
            print(f"{'route':<14}{'clients':>8}{'requests':>10}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}")
            for route in ("/v1/retrieve", "/v1/ask"):
                for clients in args.levels:
                    n = args.requests if route == "/v1/retrieve" else args.ask_requests
                    r = (run_ab(url, key, route, questions[0], clients, n) if args.client == "ab"
                         else run_level(url, key, route, questions, clients, n, args.max_seconds))
                    results.append({"route": route, **r})
                    print(f"{route:<14}{clients:>8}{r['requests']:>10}{r['errors']:>8}{r['p50_ms']:>9.1f}"
                          f"{r['p99_ms']:>9.1f}{r['rps']:>8.1f}")
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="lecture", help="a folder of corpora/ (default: lecture)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50], help="concurrent clients")
    ap.add_argument("--requests", type=int, default=200, help="/v1/retrieve requests per level")
    ap.add_argument("--ask-requests", type=int, default=100, help="/v1/ask requests per level")
    ap.add_argument("--max-seconds", type=float, default=90.0, help="time limit per route and level")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    ap.add_argument("--threads", type=int, default=None, help="the server's server.threads (default: its config's)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1], help="server.workers values to measure in turn")
    ap.add_argument("--rounds", type=int, default=1, help="times to measure every --workers value (A B A B)")
    ap.add_argument("--client", choices=["python", "ab"], default="python",
                    help="load generator: python coroutines (the dev questions in turn) or ab (apache2-utils; one "
                         "question; leaves the server more of the shared cores)")
    args = ap.parse_args()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.threads is not None:
        env["RAG_SERVER__THREADS"] = str(args.threads)
    index = ROOT / ".rag" / "bench" / f"serve-{args.corpus}"
    print(f"index {index} (ingesting corpora/{args.corpus}/docs if needed)")
    subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(ROOT / "corpora" / args.corpus / "docs"),
                    "--index", str(index), "--prune"], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    qfile = ROOT / "corpora" / args.corpus / "questions" / "dev.jsonl"
    questions = [json.loads(line)["question"] for line in qfile.read_text().splitlines() if line.strip()]

    # The CLI, not an import: bench/ingest.py would shadow the `ingest` package inside this script.
    made = subprocess.run([sys.executable, "-m", "rag.cli", "keys", "create", "--index", str(index), "--name", "bench",
                           "--tenant", "*", "--json"], check=True, env=env, cwd=ROOT, capture_output=True, text=True)
    key = json.loads(made.stdout)
    results: list[dict[str, object]] = []
    try:
        print(f"rate-limit check (SQLite, 120 a minute, window full): {limit_check_us(index, env):.0f} us")
        for rnd in range(args.rounds):
            for workers in args.workers:
                print(f"-- server.workers = {workers}" + (f", round {rnd + 1}" if args.rounds > 1 else ""))
                for r in measure(index, key["key"], questions, workers, args, env):
                    results.append({"workers": workers, "round": rnd + 1, **r})
    finally:
        subprocess.run([sys.executable, "-m", "rag.cli", "keys", "revoke", key["id"], "--index", str(index)],
                       env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    if args.json:
        print(json.dumps(results))
    if any(r["errors"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
