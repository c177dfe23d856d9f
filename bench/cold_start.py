"""Cold start of the CLI (run by hand; prints figures): `rag --help`, `rag stats` and a first `rag retrieve` on a
~13k-chunk index, each a fresh process, wall time, medians. With --baseline DIR (a checkout of an older commit,
e.g. `git worktree add /tmp/base <commit>`) the same commands of that code run interleaved with this one's
(A B A B ...), each on an index built by its own code, so the before/after ratio is measured under the same load.

    python bench/cold_start.py [--baseline /tmp/base] [--chunks 13000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"--help": 0.5, "stats": 1.0, "retrieve": 3.0}
BUILD = """
import sys
sys.path.insert(0, {repo!r})
from bench.query import build_synthetic
{encoder_code}
build_synthetic(__import__('pathlib').Path({index!r}), {chunks}, 384, 'bundled:all-MiniLM-L6-v2', **kw)
"""
# This checkout records the encoder a default ingest would choose, so `rag retrieve` opens that one.
ENCODER_CODE = """
from ingest.config import EmbeddingConfig
from ingest.manifest import encoder_fields
from ingest.embedding import open_embedder
kw = {'encoder': encoder_fields(open_embedder(EmbeddingConfig()), None)}
"""


def build(repo: Path, index: Path, chunks: int, current: bool) -> None:
    code = BUILD.format(repo=str(repo), index=str(index), chunks=chunks,
                        encoder_code=ENCODER_CODE if current else "kw = {}")
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True, env=_env())


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}


CPU: dict[tuple[str, str], list[float]] = {}


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(repo: Path, args: list[str]) -> float:
    """Wall seconds of one fresh `rag` process (its CPU seconds go to CPU, keyed by command and checkout)."""
    t, c = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=repo, env=_env(), capture_output=True, text=True)
    dt = time.perf_counter() - t
    CPU.setdefault((args[0], str(repo)), []).append(_children_cpu() - c)
    if done.returncode != 0:
        raise SystemExit(f"{repo}: rag {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, default=None, help="checkout of the code to compare with")
    ap.add_argument("--chunks", type=int, default=13_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--index", type=Path, default=None, help="an index built by this checkout to reuse (no baseline)")
    args = ap.parse_args()
    repos = {"now": ROOT}
    if args.baseline:
        repos = {"before": args.baseline.resolve(), **repos}
    with tempfile.TemporaryDirectory(prefix="rag-cold-") as tmp:
        indexes = {}
        for name, repo in repos.items():
            indexes[name] = Path(tmp) / name
            if args.index and name == "now":
                indexes[name] = args.index
                continue
            t = time.perf_counter()
            build(repo, indexes[name], args.chunks, current=name == "now")
            print(f"{name}: built a {args.chunks}-chunk index with {repo} in {time.perf_counter() - t:.1f} s")
        commands = {"--help": ["--help"], "stats": ["stats", "--index"], "retrieve": ["retrieve", "--index"]}
        times: dict[tuple[str, str], list[float]] = {}
        for run in range(args.runs + 1):  # run 0 warms the page cache and Python's bytecode cache
            for cmd, argv in commands.items():
                for name, repo in repos.items():
                    full = [*argv, str(indexes[name])] if argv[-1] == "--index" else list(argv)
                    if cmd == "retrieve":
                        full = ["retrieve", "how do I configure the write-ahead log?", "--index", str(indexes[name])]
                    dt = timed(repo, full)
                    if run:
                        times.setdefault((cmd, name), []).append(dt)
    print(f"\nload average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; wall seconds, median of {args.runs} "
          "(fresh process each, interleaved)")
    print(f"{'command':<12}" + "".join(f"{n:>10}" for n in repos) + ("   now/before" if len(repos) > 1 else "") + "   goal")
    for cmd in commands:
        meds = {n: statistics.median(times[(cmd, n)]) for n in repos}
        line = f"{'rag ' + cmd:<12}" + "".join(f"{meds[n]:>10.2f}" for n in repos)
        if len(repos) > 1:
            line += f"   {meds['now'] / meds['before']:>10.2f}"
        verdict = "met" if meds["now"] <= GOALS[cmd] else "MISSED"
        cpu = {n: statistics.median(CPU[(commands[cmd][0] if cmd != "retrieve" else "retrieve", str(r))])
               for n, r in repos.items()}
        print(f"{line}   <= {GOALS[cmd]} s: {verdict}   (CPU s: " + ", ".join(f"{n} {c:.2f}" for n, c in cpu.items()) + ")")


if __name__ == "__main__":
    main()
