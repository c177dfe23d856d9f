"""Query latency (run by hand; prints figures).

    python bench/query.py [--sizes 10000 100000] [--queries 200] [--ttft]

1. Retrieval latency p50/p99 per mode over synthetic indexes of 10k and 100k chunks (random unit vectors,
   text drawn from a vocabulary so BM25 has realistic postings), query embedding included.
2. With --ttft: time to first token of the default local model, cold (model load + first question) and
   warm (a second question over the same context, reusing llama.cpp's prompt cache).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo first: bench/ingest.py must not shadow the ingest package

from ingest.collection import Collection, empty_vectors  # noqa: E402
from ingest.config import IngestConfig  # noqa: E402
from ingest.embedding import open_embedder  # noqa: E402
from ingest.manifest import Manifest, encoder_fields  # noqa: E402
from ingest.records import Chunk, Document, Section, sha256_hex  # noqa: E402
from rag import retrieve  # noqa: E402
from rag.config import RetrievalConfig, load_config  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402


def build_synthetic(directory: Path, n_chunks: int, dim: int, model_id: str, index_type: str = "flat",
                    encoder: dict[str, object] | None = None) -> None:
    """An index of n_chunks random unit vectors with Zipf-distributed text; `encoder` = manifest encoder fields."""
    rng = random.Random(0)
    vocab = [f"term{i}" for i in range(20000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf-like word frequencies
    coll = Collection(directory, readonly=False)
    store = coll.store
    vecs = np.random.default_rng(0).standard_normal((n_chunks, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    per_doc = 100
    store.db.execute("BEGIN IMMEDIATE")
    all_ids: list[int] = []
    for d in range(n_chunks // per_doc):
        texts = [" ".join(rng.choices(vocab, weights, k=120)) for _ in range(per_doc)]
        hashes = [sha256_hex(f"{d}:{i}:{t}") for i, t in enumerate(texts)]
        doc = Document(source=f"doc{d}.txt", kind="text", doc_hash=sha256_hex(str(d)), title="",
                       sections=(Section("x", 0),))
        chunks = [Chunk(chunk_id=h[:24], source=doc.source, text=t, start=0, end=len(t), text_hash=h,
                        doc_hash=doc.doc_hash, ordinal=i) for i, (t, h) in enumerate(zip(texts, hashes, strict=True))]
        store.put_vectors(hashes, vecs[d * per_doc:(d + 1) * per_doc])
        all_ids += store.add_document(doc, doc.source, "/", chunks, None, ())
    cfg = IngestConfig(index_type=index_type)
    index = empty_vectors(dim, cfg)
    index.rebuild(np.asarray(all_ids, dtype=np.int64), vecs[: len(all_ids)])
    coll.commit_generation(index, Manifest(embedding_model=model_id, dim=dim, chunk_size=cfg.chunk_size,
                                           chunk_overlap=cfg.chunk_overlap, index_type=index_type,
                                           documents=n_chunks // per_doc, chunks=len(all_ids), **(encoder or {})))
    coll.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ttft", action="store_true")
    ap.add_argument("--index-type", default="flat", choices=["flat", "hnsw", "ivf"])
    ap.add_argument("--keep", type=Path, default=None, help="keep the synthetic indexes in this folder and reuse them")
    args = ap.parse_args()
    cfg = load_config(ROOT / "config.toml")
    embedder = open_embedder(cfg.ingest.embedding)
    rng = random.Random(1)
    saved = retrieve.POSTING_BUDGET
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as scratch:
            tmp = str(args.keep / f"{n}-{args.index_type}") if args.keep else scratch
            if not (Path(tmp) / "manifest.json").exists():
                t = time.perf_counter()
                build_synthetic(Path(tmp), n, embedder.dim, embedder.model_id, args.index_type,
                                encoder=encoder_fields(embedder, None))
                print(f"\n{n} chunks ({args.index_type} index): built in {time.perf_counter() - t:.1f}s")
            else:
                print(f"\n{n} chunks ({args.index_type} index): reusing {tmp}")
            coll = Collection(Path(tmp))
            # "-every-term" variants OR every query word into the FTS5 query (the code before the posting budget);
            # all variants run on the same queries, interleaved query by query.
            variants = {f"{mode}{suffix}": (Retriever(coll, embedder, RetrievalConfig(mode=mode)), budget)
                        for mode in ("dense", "keyword", "hybrid")
                        for suffix, budget in (("", retrieve.POSTING_BUDGET), ("-every-term", 10**12))
                        if not (mode == "dense" and suffix)}
            lat: dict[str, list[float]] = {name: [] for name in variants}
            for i in range(args.queries + 5):
                q = " ".join(f"term{rng.randint(0, 3000)}" for _ in range(6))
                for name, (retriever, budget) in variants.items():
                    retrieve.POSTING_BUDGET = budget
                    t = time.perf_counter()
                    retriever.search(q, k=10)
                    if i >= 5:  # warm-up
                        lat[name].append(1000 * (time.perf_counter() - t))
            retrieve.POSTING_BUDGET = saved
            for name, values in lat.items():
                print(f"  {name:>18}: p50 {statistics.median(values):6.2f} ms  p99 {pct(values, 99):6.2f} ms")
            print(f"  (load average {os.getloadavg()[0]:.2f})")
            t = time.perf_counter()
            for _ in range(50):
                embedder.embed(["term12 term99 term400 term7 term3000 term15"])
            print(f"  (query embedding alone: {1000 * (time.perf_counter() - t) / 50:.2f} ms)")
            coll.close()
    if args.ttft:
        ttft(cfg, embedder)


def ttft(cfg, embedder) -> None:
    from ingest.pipeline import ingest_paths
    from rag.api import open_pipeline

    index = ROOT / ".rag" / "bench" / "ttft-lecture"
    ingest_paths([ROOT / "corpora" / "lecture" / "docs"], index, cfg.ingest, embedder=embedder)
    t0 = time.perf_counter()
    with open_pipeline(index, cfg, embedder=embedder) as r:
        questions = (("cold", "Which year did GANs appear?"), ("warm", "Which year did GANs appear, exactly?"))
        for label, question in questions:
            t = time.perf_counter()
            first = None
            for item in r.stream(question):
                if isinstance(item, str) and first is None:
                    first = time.perf_counter()
            start = t0 if label == "cold" else t
            print(f"time to first token ({label}, model {cfg.local.model}): "
                  f"{(first or time.perf_counter()) - start:.2f}s")


if __name__ == "__main__":
    main()
