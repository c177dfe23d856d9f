"""Approximate search at scale (run by hand; prints figures): recall@10 of the ANN index against exact search, query
latency and the resident memory of a reader process that opens the saved index as `rag` does (memory-mapped).

    python bench/ann.py [--n 1000000] [--kind ivf] [--nlist 1024] [--queries 200]

Vectors are synthetic but clustered like sentence embeddings (unit vectors around 4,000 topic centres, cosine ~0.7
to their centre), not uniform noise, on which no ANN index is meaningful. The index is built with ingest.index's
FaissIndex (the product's code path), saved, and searched by a fresh process; memory is that process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

READER = """
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from ingest.index import FaissIndex
def peak_mib():  # VmHWM of this process; ru_maxrss would count the parent's resident memory at fork
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
t = time.perf_counter()
index = FaissIndex.load({path!r}, kind={kind!r}, mmap=True)
load = time.perf_counter() - t
q = np.load({queries!r})
lat = []
ids = []
for row in q:
    t = time.perf_counter()
    _, i = index.search(row[None, :], 10)
    lat.append(1000 * (time.perf_counter() - t))
    ids.append(i[0].tolist())
lat.sort()
print(json.dumps({{"load_s": load, "p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(0.99 * (len(lat) - 1))],
                  "rss_mb": peak_mib(), "ids": ids}}))
"""


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, len(centres), m)] + rng.standard_normal((m, dim), dtype=np.float32) * 0.05
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--kind", default="ivf", choices=["ivf", "hnsw"])
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    import faiss

    from ingest.index import FaissIndex

    dim = 384
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4000, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    t = time.perf_counter()
    xb = clustered(args.n, dim, rng, centres)
    xq = clustered(args.queries, dim, rng, centres)
    index = FaissIndex(dim, kind=args.kind, ivf_nlist=args.nlist)
    index.rebuild(np.arange(args.n, dtype=np.int64), xb)
    build = time.perf_counter() - t
    _, exact = faiss.knn(xq, xb, 10, metric=faiss.METRIC_INNER_PRODUCT)
    del xb
    with tempfile.TemporaryDirectory(prefix="rag-ann-") as tmp:
        path = Path(tmp) / "vectors.faiss"
        index.save(path)
        del index
        np.save(Path(tmp) / "q.npy", xq)
        code = READER.format(root=str(ROOT), path=str(path), kind=args.kind, queries=str(Path(tmp) / "q.npy"))
        env = {**__import__("os").environ, "OMP_WAIT_POLICY": "PASSIVE"}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        res = json.loads(done.stdout.strip().splitlines()[-1])
        size = path.stat().st_size / 2**20
    recall = np.mean([len(set(a) & set(b.tolist())) / 10 for a, b in zip(res["ids"], exact, strict=True)])
    print(f"{args.n} vectors, {args.kind} (nlist {args.nlist}): built in {build:.0f} s, file {size:.0f} MiB")
    print(f"  recall@10 vs exact {recall:.3f} (goal >= 0.95: {'met' if recall >= 0.95 else 'MISSED'})")
    print(f"  search p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms; reader load {res['load_s']:.2f} s, "
          f"peak RSS {res['rss_mb']:.0f} MiB (goal <= 2048: {'met' if res['rss_mb'] <= 2048 else 'MISSED'})")


if __name__ == "__main__":
    main()
