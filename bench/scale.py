"""Both index backends at scale (run by hand; prints figures): pgvector HNSW in PostgreSQL and the embedded backend's
ANN option (FAISS HNSW): build time, memory or disk, p50/p99 retrieval latency, recall@10 against exact search.

    python bench/scale.py                      # 1,000,000 chunks
    python bench/scale.py --chunks 20000       # a quick check
    python bench/scale.py --backends postgres --ef 40,64,100

Vectors are synthetic. By default they are clustered around 4,000 random centres (bench/ann.py's generator), which
makes the true top 10 easy to find once a cluster holds more than 10 points (recall reads 1.000 at 200 k). With
`--seed-index DIR` (an embedded rag index of your own documents) they are drawn around that index's real vectors
instead: a real vector moved part of the way towards one of its 10 nearest real neighbours, plus noise shaped like
the real vectors' covariance (`--sigma`, 0.5 by default: at the seed count it reproduces the real top-1 and top-10
neighbour similarities of the bundled corpora; the calibration is printed). Either way every chunk carries a
real-text-sized payload (~1,000 characters of words, as a 200-word-piece chunk), so PostgreSQL's rows, its
full-text column and its heap reads are those of real chunks. Goals: recall@10 >= 0.95, p50 <= 20 ms,
embedded-backend memory <= 2 GB.

PostgreSQL is started here by pgserver (PostgreSQL 16 + pgvector 0.6.2) in a temporary folder, the index is made by
the product's own schema (ingest.pg), rows are loaded by COPY, the full-text and HNSW indexes are built after the
load (as for a migration), and queries go through the product's read path (PgIndex.snapshot + PgView.dense_search:
a REPEATABLE READ transaction as the read-only role, row-level security on) from a fresh process. The embedded side
is bench/ann.py's: FaissIndex (kind hnsw) built, saved, and searched by a fresh process that maps the file as `rag`
does; its memory is that process's peak RSS.

The 1 M-chunk figures in docs/scaling.md (16 cores, 125 GiB RAM), reproduced from the repository root:

    rag ingest corpora/sqlite-docs/docs --index /tmp/sqlite-docs-index   # built-in defaults: 1,693 MiniLM vectors
    mkdir -p /tmp/seed && cp /tmp/sqlite-docs-index/store.sqlite /tmp/seed/   # --seed-index reads only store.sqlite
    export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
    mount -o remount,size=48G /dev/shm   # as root: room for PostgreSQL's parallel HNSW build in shared memory
    python bench/scale.py --chunks 1000000 --queries 200 --seed-index /tmp/seed --backends embedded \\
        --json embedded.json > embedded.log 2>&1 &    # both backends at once, in two processes
    python bench/scale.py --chunks 1000000 --queries 200 --seed-index /tmp/seed --backends postgres \\
        --pg-workers 12 --pg-memory 16GB --json postgres.json
    wait

The embedded figures were then measured again with the first command alone (memory read from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from ann import clustered  # noqa: E402 - bench/ann.py's generator

WORDS = ("retrieval model index vector query chunk document tenant answer citation passage embedding corpus token "
         "server replica latency recall memory search filter ranking fusion keyword dense sparse schema").split()

EMBEDDED_READER = """
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from ingest.index import FaissIndex
def status():  # resident memory: its peak (VmHWM: ru_maxrss would include the parent's at fork), private (anonymous)
    # pages, and pages of the mapped index file
    d = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {{k: int(d[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile", "RssShmem")}}
t = time.perf_counter()
index = FaissIndex.load({path!r}, kind="hnsw", mmap=True)
load = time.perf_counter() - t
q = np.load({queries!r})
out = {{"load_s": load, "by_ef": {{}}, "after_load_mib": status()}}
for ef in {efs!r}:
    index.ef_search = ef  # [index] ef_search: what each search passes FAISS as efSearch
    lat, ids = [], []
    for row in q:
        t = time.perf_counter()
        _, i = index.search(row[None, :], 10)
        lat.append(1000 * (time.perf_counter() - t))
        ids.append(i[0].tolist())
    lat.sort()
    out["by_ef"][ef] = {{"p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(0.99 * (len(lat) - 1))], "ids": ids}}
out["after_queries_mib"] = status()
print(json.dumps(out))
"""

PG_READER = """
import json, os, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from ingest.backend import PostgresTarget
from ingest.pg import index as pg_index
from ingest.store import ChunkFilter
index = pg_index.PgIndex(PostgresTarget(dsn_env="BENCH_PG_DSN", schema="bench"), ef_search={ef})
q = np.load({queries!r})
out = {{}}
for name, tenants, n in (("unfiltered", None, 10), ("one tenant of 10", ("t3",), 10)):
    lat, ids = [], []
    for row in q:
        t = time.perf_counter()
        with index.snapshot(tenants) as view:
            hits = view.dense_search(row[None, :], n, ChunkFilter(tenants=tenants))
        lat.append(1000 * (time.perf_counter() - t))
        ids.append([i for i, _ in hits])
    lat.sort()
    out[name] = {{"p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(0.99 * (len(lat) - 1))], "ids": ids}}
index.close()
print(json.dumps(out))
"""


def payloads(n: int, rng: np.random.Generator, chars: int) -> list[str]:
    """Texts of about `chars` characters, different per chunk (a number in each), cheap to make."""
    base = [" ".join(rng.choice(WORDS, size=chars // 7)) for _ in range(64)]
    return [f"chunk {i}: {base[i % 64]}"[:chars] for i in range(n)]


def run_embedded(xb: np.ndarray, xq: np.ndarray, exact: np.ndarray, m: int, efs: list[int]) -> dict[str, object]:
    from ingest.index import FaissIndex

    t = time.perf_counter()
    index = FaissIndex(xb.shape[1], kind="hnsw", hnsw_m=m)
    index.rebuild(np.arange(len(xb), dtype=np.int64), xb)
    build = time.perf_counter() - t
    print(f"  embedded: HNSW built in {build:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="rag-scale-") as tmp:
        path = Path(tmp) / "vectors.faiss"
        index.save(path)
        del index
        np.save(Path(tmp) / "q.npy", xq)
        code = EMBEDDED_READER.format(root=str(ROOT), path=str(path), queries=str(Path(tmp) / "q.npy"), efs=efs)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        res = json.loads(done.stdout.strip().splitlines()[-1])
        size = path.stat().st_size
    by_ef = {ef: {"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "recall": recall(r["ids"], exact)}
             for ef, r in res["by_ef"].items()}
    return {"build_s": build, "disk_mib": size / 2**20, "rss_mib": res["after_queries_mib"]["VmHWM"], "load_s": res["load_s"],
            "memory_after_load_mib": res["after_load_mib"], "memory_after_queries_mib": res["after_queries_mib"],
            "tmp_dir": tempfile.gettempdir(), "by_ef": by_ef}


def run_postgres(xb: np.ndarray, xq: np.ndarray, exact: np.ndarray, m: int, efs: list[int], chars: int,
                 rng: np.random.Generator, tmp: Path, workers: int = 1, work_mem: str = "4GB") -> dict[str, object]:
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp))
    import pgserver
    import psycopg

    from ingest.backend import PostgresTarget
    from ingest.manifest import Manifest
    from ingest.pg.writer import PgWriter

    server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
    try:
        admin = server.get_uri()
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        os.environ["BENCH_PG_DSN"] = admin
        target = PostgresTarget(dsn_env="BENCH_PG_DSN", schema="bench")
        writer = PgWriter(target)  # the product's schema, row-level security included
        conn = writer.conn
        n, dim = xb.shape
        texts = payloads(n, rng, chars)
        t = time.perf_counter()
        with conn.transaction():
            conn.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({dim})")
            conn.execute("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN")
            conn.execute("DROP INDEX chunks_tsv")  # rebuilt after the load, as one index build
            per_doc = 1000
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO documents(id, source, path, root, kind, doc_hash, tenant, n_chunks, "
                                "ingested_at) VALUES (%s, %s, %s, '/', 'text', %s, %s, %s, 0)",
                                [(d + 1, f"doc{d}.txt", f"/doc{d}.txt", f"h{d}", f"t{d % 10}", per_doc)
                                 for d in range((n + per_doc - 1) // per_doc)])
            conn.execute("CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT id, chunk_id, doc_id, tenant, ordinal, "
                         'text, start, "end", text_hash, embedding FROM chunks WITH NO DATA')
            with conn.cursor() as cur, cur.copy("COPY stage FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "int8", "text", "int4", "text", "int4", "int4", "text", "vector"])
                for i in range(n):
                    d = i // per_doc
                    copy.write_row((i + 1, f"c{i}", d + 1, f"t{d % 10}", i % per_doc, texts[i], 0, len(texts[i]),
                                    f"h{i}", xb[i]))
            conn.execute('INSERT INTO chunks(id, chunk_id, doc_id, tenant, ordinal, text, start, "end", text_hash, '
                         'embedding) SELECT * FROM stage')
            load = time.perf_counter() - t
            print(f"  postgres: {n:,} rows loaded in {load:.0f} s", flush=True)
            t = time.perf_counter()
            conn.execute(f"SET maintenance_work_mem = '{work_mem}'")
            conn.execute("CREATE INDEX chunks_tsv ON chunks USING gin (tsv)")
            fts = time.perf_counter() - t
            t = time.perf_counter()
            conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
            conn.execute(f"CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops) "
                         f"WITH (m = {m}, ef_construction = 64)")
            hnsw = time.perf_counter() - t
            print(f"  postgres: full-text index {fts:.0f} s, HNSW ({workers} parallel workers) {hnsw:.0f} s", flush=True)
            manifest = Manifest(embedding_model="synthetic", dim=dim, chunk_size=200, chunk_overlap=30,
                                index_type="hnsw", generation=1, documents=(n + per_doc - 1) // per_doc, chunks=n)
            conn.execute("INSERT INTO meta(key, value) VALUES ('manifest', %s), ('generation', '1')",
                         (manifest.to_json(),))
        conn.execute("VACUUM ANALYZE chunks")
        sizes = dict(conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c WHERE c.relnamespace = 'bench'::regnamespace "
            "AND c.relname IN ('chunks', 'chunks_embedding', 'chunks_tsv')").fetchall())
        writer.close()
        exact_t3 = None
        results = {}
        with tempfile.TemporaryDirectory(prefix="rag-scale-q-") as qdir:
            np.save(Path(qdir) / "q.npy", xq)
            for ef in efs:
                code = PG_READER.format(root=str(ROOT), queries=str(Path(qdir) / "q.npy"), ef=ef)
                done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                res = json.loads(done.stdout.strip().splitlines()[-1])
                if exact_t3 is None:
                    exact_t3 = exact_in_tenant(xb, xq, n, per_doc, 3)
                results[ef] = {"unfiltered": {**_lat(res["unfiltered"]), "recall": recall(
                    [[i - 1 for i in ids] for ids in res["unfiltered"]["ids"]], exact)},
                    "tenant": {**_lat(res["one tenant of 10"]), "recall": recall(
                        [[i - 1 for i in ids] for ids in res["one tenant of 10"]["ids"]], exact_t3)}}
        return {"load_s": load, "fts_index_s": fts, "hnsw_build_s": hnsw,
                "table_mib": sizes.get("chunks", 0) / 2**20, "hnsw_mib": sizes.get("chunks_embedding", 0) / 2**20,
                "gin_mib": sizes.get("chunks_tsv", 0) / 2**20, "by_ef": results}
    finally:
        server.cleanup()


def exact_in_tenant(xb: np.ndarray, xq: np.ndarray, n: int, per_doc: int, tenant: int) -> np.ndarray:
    import faiss

    rows = np.flatnonzero((np.arange(n) // per_doc) % 10 == tenant)
    _, local = faiss.knn(xq, xb[rows], 10, metric=faiss.METRIC_INNER_PRODUCT)
    return rows[local]


def _lat(res: dict) -> dict[str, float]:
    return {"p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"]}


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f[:10]) & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True)]))


def load_figure() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs"


def seed_vectors(index_dir: Path) -> np.ndarray:
    """The unit vectors stored in an embedded index (its `vectors` table)."""
    import sqlite3

    con = sqlite3.connect(f"file:{index_dir / 'store.sqlite'}?mode=ro", uri=True)
    x = np.stack([np.frombuffer(v, dtype=np.float32) for (v,) in con.execute("SELECT vector FROM vectors")])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def seeded(n: int, rng: np.random.Generator, real: np.ndarray, sigma: float, mix: float = 0.5) -> np.ndarray:
    """n unit vectors around real ones (see the module docstring)."""
    import faiss

    _, s, vt = np.linalg.svd(real - real.mean(0), full_matrices=False)
    shaped = (vt * (s / np.sqrt(len(real)))[:, None]).astype(np.float32)  # rows: principal axes times their spread
    _, nn = faiss.knn(real, real, 11, metric=faiss.METRIC_INNER_PRODUCT)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        a = rng.integers(0, len(real), m)
        b = nn[a, rng.integers(1, 11, m)]
        t = rng.uniform(0, mix, (m, 1)).astype(np.float32)
        x = (1 - t) * real[a] + t * real[b] + sigma * (rng.standard_normal((m, len(s)), dtype=np.float32) @ shaped)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def neighbour_similarity(x: np.ndarray) -> str:
    import faiss

    d, _ = faiss.knn(x, x, 11, metric=faiss.METRIC_INNER_PRODUCT)
    return f"top-1 similarity median {np.median(d[:, 1]):.3f}, top-10 {np.median(d[:, 10]):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--backends", default="embedded,postgres")
    ap.add_argument("--m", type=int, default=32, help="HNSW links per node, both backends (ingest.hnsw_m)")
    ap.add_argument("--ef", default="40,100,200,400", help="pgvector hnsw.ef_search floors, comma-separated")
    ap.add_argument("--faiss-ef", default="64,128,256", help="FAISS HNSW efSearch values, comma-separated")
    ap.add_argument("--payload", type=int, default=1000, help="characters of text per chunk")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    ap.add_argument("--seed-index", type=Path, default=None, help="draw vectors around this embedded index's vectors")
    ap.add_argument("--sigma", type=float, default=0.5, help="noise of --seed-index vectors")
    ap.add_argument("--pg-workers", type=int, default=1, help="PostgreSQL parallel workers for the HNSW build")
    ap.add_argument("--pg-memory", default="4GB", help="PostgreSQL maintenance_work_mem for the index builds")
    args = ap.parse_args()
    import faiss

    dim = 384
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4000, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if args.seed_index:
        real = seed_vectors(args.seed_index)
        print(f"seeded by {len(real):,} real vectors: real {neighbour_similarity(real)}; synthetic at that count "
              f"{neighbour_similarity(seeded(len(real), rng, real, args.sigma))}")
        xb, xq = seeded(args.chunks, rng, real, args.sigma), seeded(args.queries, rng, real, args.sigma)
    else:
        xb = clustered(args.chunks, dim, rng, centres)
        xq = clustered(args.queries, dim, rng, centres)
    _, exact = faiss.knn(xq, xb, 10, metric=faiss.METRIC_INNER_PRODUCT)
    data = f"seeded by {args.seed_index}, sigma {args.sigma}" if args.seed_index else "clustered"
    figures: dict[str, object] = {"data": data, "chunks": args.chunks, "queries": args.queries, "m": args.m,
                                  "cpus": os.cpu_count(), "pg_workers": args.pg_workers, "start": load_figure()}
    print(f"{args.chunks:,} chunks of {dim} dims, {args.queries} queries, HNSW m={args.m}; {figures['start']}")
    if "embedded" in args.backends:
        e = run_embedded(xb, xq, exact, args.m, [int(x) for x in args.faiss_ef.split(",")])
        figures["embedded"] = e
        if args.json:  # written after each backend, so a run stopped in the next one keeps these figures
            args.json.write_text(json.dumps(figures, indent=2))
        print(f"embedded (FAISS HNSW): built in {e['build_s']:.0f} s, file {e['disk_mib']:.0f} MiB, reader peak RSS "
              f"{e['rss_mib']:.0f} MiB (goal <= 2048), loaded in {e['load_s']:.2f} s")
        for when in ("after_load", "after_queries"):
            mem = e[f"memory_{when}_mib"]
            print(f"  {when.replace('_', ' ')}: private {mem['RssAnon']:.0f} MiB, mapped file pages {mem['RssFile']:.0f} MiB, "
                  f"shared memory {mem['RssShmem']:.0f} MiB, peak {mem['VmHWM']:.0f} MiB")
        for ef, f in e["by_ef"].items():  # type: ignore[union-attr]
            print(f"  efSearch {ef}: p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms, recall@10 {f['recall']:.3f}")
    if "postgres" in args.backends:
        with tempfile.TemporaryDirectory(prefix="rag-scale-pg-") as tmp:
            p = run_postgres(xb, xq, exact, args.m, [int(x) for x in args.ef.split(",")], args.payload, rng, Path(tmp),
                             args.pg_workers, args.pg_memory)
        figures["postgres"] = p
        print(f"postgres (pgvector HNSW): rows loaded in {p['load_s']:.0f} s, full-text index {p['fts_index_s']:.0f} s, "
              f"HNSW built in {p['hnsw_build_s']:.0f} s; table {p['table_mib']:.0f} MiB, HNSW {p['hnsw_mib']:.0f} MiB, "
              f"GIN {p['gin_mib']:.0f} MiB")
        for ef, r in p["by_ef"].items():  # type: ignore[union-attr]
            for name, f in r.items():
                print(f"  ef_search floor {ef}, {name}: p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms, "
                      f"recall@10 {f['recall']:.3f}")
    figures["end"] = load_figure()
    print(figures["end"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
