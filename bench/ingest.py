"""Ingestion benchmark: throughput, the cost of ingest over pure embedding, and the cost of a no-op re-ingest.

Run by hand (prints figures, asserts nothing):

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python bench/ingest.py            # corpora/*/docs
    python bench/ingest.py PATH [PATH ...] --repeat 3                          # a corpus of your own, copied 3x
    python bench/ingest.py --vs langchain R-exts.pdf HTML_DIR [--rounds 2]      # side by side with LangChain

The embedding model is loaded and warmed up *before* the timed ingest and passed to it, so the ingest time
below excludes model loading (printed separately). The pure encode() time is measured on exactly the texts the
ingest embedded (unique chunk texts), in the pipeline's order and batches, with the same embedder object.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest import pipeline  # noqa: E402
from ingest.collection import Collection  # noqa: E402
from ingest.config import IngestConfig  # noqa: E402
from ingest.embedding import open_embedder  # noqa: E402

GOAL_RATIO = 1.1
GOAL_REINGEST = 0.02


def _timed(table: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap fn so that the seconds spent in it add up in table[name]."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[name] += time.perf_counter() - t

    return wrapper


def _instrument(table: dict[str, float]) -> Callable[[], None]:
    """Time the stages of an ingest run that happen in this process (scan, read, commit); returns an undo function.
    Parsing and chunking run in the loader worker processes, overlapped with embedding, so they have no line."""
    saved = [
        (pipeline, "scan", pipeline.scan),
        (pipeline, "read_file", pipeline.read_file),
        (pipeline.Ingestor, "_commit", pipeline.Ingestor._commit),
    ]
    pipeline.scan = _timed(table, "scan", pipeline.scan)
    pipeline.read_file = _timed(table, "read", pipeline.read_file)
    pipeline.Ingestor._commit = _timed(table, "commit", pipeline.Ingestor._commit)

    def undo() -> None:
        for owner, name, fn in saved:
            setattr(owner, name, fn)

    return undo


def _corpus(paths: list[Path], repeat: int, workdir: Path) -> list[Path]:
    if repeat <= 1:
        return paths
    out = workdir / "corpus"
    for i in range(repeat):
        for j, p in enumerate(paths):
            dest = out / f"copy{i}" / f"{j}-{p.name}"
            if p.is_dir():
                shutil.copytree(p, dest)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dest)
    return [out]


def _unique_texts_in_pipeline_order(index_dir: Path) -> list[str]:
    coll = Collection(index_dir)
    try:
        rows = coll.store.db.execute("SELECT text_hash, text FROM chunks").fetchall()
    finally:
        coll.close()
    unique = {h: t for h, t in rows}
    return sorted(unique.values(), key=lambda t: -len(t))  # as Ingestor._embed_missing orders them


def _over_limit(index_dir: Path, limit: int) -> tuple[int, int]:
    """(chunks of the index, chunks longer than `limit` word pieces: text the embedder would truncate)."""
    from ingest.embedding import load_tokenizer

    tokenizer, _ = load_tokenizer(IngestConfig().embedding)
    tokenizer.no_truncation()
    coll = Collection(index_dir)
    try:
        texts = [r[0] for r in coll.store.db.execute("SELECT text FROM chunks")]
    finally:
        coll.close()
    return len(texts), sum(1 for e in tokenizer.encode_batch(texts, add_special_tokens=False) if len(e.ids) > limit)


def _run_json(argv: list[str]) -> tuple[float, dict[str, Any]]:
    import json
    import subprocess

    # A long parse limit: on a loaded machine a PDF whose blank pages go to OCR can pass the default 60 s, and a
    # file that fails would make the run look fast. Failed files are reported per round anyway.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "RAG_INGEST__LOAD_TIMEOUT_S": "1800"}
    t = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if done.returncode not in (0, 2):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def versus_langchain(paths: list[Path], rounds: int) -> int:
    """`rag ingest` and LangChain's default pipeline on the same collection, fresh processes, A B A B, medians."""
    rag_cli = [sys.executable, "-m", "rag.cli", "ingest", "--json"]
    baseline = [sys.executable, str(ROOT / "bench" / "langchain_ingest.py")]
    verdicts = []
    for path in paths:
        rag_s: list[float] = []
        lc_s: list[float] = []
        with tempfile.TemporaryDirectory(prefix="rag-vs-") as tmp:
            for r in range(rounds):
                index = Path(tmp) / f"rag-{r}"
                wall, rep = _run_json([*rag_cli, str(path), "--index", str(index)])
                rag_s.append(wall)
                if rep.get("failed"):
                    print(f"  round {r + 1}: rag FAILED files (the round does not count as a comparison): {rep['failed']}")
                lc_wall, lc = _run_json([*baseline, str(path), "--out", str(Path(tmp) / f"lc-{r}")])
                lc_s.append(lc_wall)
                print(f"  round {r + 1}: rag {wall:.1f} s ({rep['chunks_added']} chunks, {rep['chunks_embedded']} embedded, "
                      f"{rep['embed_seconds']:.1f} s in the encoder) | langchain {lc_wall:.1f} s ({lc['chunks']} chunks, "
                      f"{lc['truncated']} truncated at 256 word pieces)  load {os.getloadavg()[0]:.1f}", flush=True)
            again, _ = _run_json([*rag_cli, str(path), "--index", str(Path(tmp) / "rag-0")])
            chunks, over = _over_limit(Path(tmp) / "rag-0", 254)
        rag_med, lc_med = statistics.median(rag_s), statistics.median(lc_s)
        ratio = rag_med / lc_med
        verdicts.append(ratio <= 0.5)
        print(f"{path}: rag ingest {rag_med:.1f} s vs LangChain {lc_med:.1f} s (medians of {rounds}) = {ratio:.2f}x "
              f"(goal <= 0.5: {'met' if ratio <= 0.5 else 'MISSED'}); rag chunks over 254 word pieces: {over} of {chunks}; "
              f"LangChain chunks truncated: {lc['truncated']} of {lc['chunks']}; unchanged re-ingest {again:.2f} s = "
              f"{again / rag_med:.3f} of the first (goal <= {GOAL_REINGEST})")
    return 0 if all(verdicts) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="files or folders (default: corpora/*/docs)")
    ap.add_argument("--repeat", type=int, default=1, help="copy the corpus N times into a temp dir (copies are "
                    "byte-identical, so their chunks are deduplicated and embedded once)")
    ap.add_argument("--index-type", default="flat", choices=["flat", "hnsw", "ivf"])
    ap.add_argument("--vs", choices=["langchain"], default=None,
                    help="time `rag ingest` against LangChain's default pipeline on each path, A B A B")
    ap.add_argument("--rounds", type=int, default=3, help="rounds: ingest and pure encode (or rag and LangChain "
                    "with --vs) alternate, and the medians are compared")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.vs:
        if not args.paths:
            ap.error("--vs needs the PDF file(s) or HTML folder(s) to compare on")
        return versus_langchain(args.paths, args.rounds)
    paths = args.paths or sorted(ROOT.glob("corpora/*/docs"))
    if not paths:
        ap.error("no corpus: give a path (corpora/*/docs not found)")
    config = IngestConfig(index_type=args.index_type)

    t = time.perf_counter()
    embedder = open_embedder(config.embedding)
    load_s = time.perf_counter() - t
    # Warm-up: the first encode() calls pay for allocations and thread start-up.
    embedder.embed(["warm up " * 150] * 64)
    embedder.embed(["a short warm-up sentence"] * 64)

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        corpus = _corpus(paths, args.repeat, work)
        ingest_runs: list[float] = []
        encode_runs: list[float] = []
        first_batch: list[float] = []
        for r in range(args.rounds):  # ingest and pure encode alternate (A B A B): load drifts hit both alike
            index_dir = work / f"index-{r}"
            stages: dict[str, float] = defaultdict(float)
            undo = _instrument(stages)
            started: list[float] = []

            def progress(stage: str, done: int, total: int, started: list[float] = started) -> None:
                if stage == "embed" and not started:
                    started.append(time.perf_counter())

            try:
                t = time.perf_counter()
                report = pipeline.ingest_paths(corpus, index_dir, config, embedder=embedder, progress=progress)
                ingest_runs.append(time.perf_counter() - t)
            finally:
                undo()
            first_batch.append(started[0] - t if started else float("nan"))

            texts = _unique_texts_in_pipeline_order(index_dir)
            t = time.perf_counter()
            for start in range(0, len(texts), pipeline.EMBED_BATCH):
                embedder.embed(texts[start:start + pipeline.EMBED_BATCH])
            encode_runs.append(time.perf_counter() - t)
            print(f"round {r + 1}: ingest {ingest_runs[-1]:.2f} s (first batch started at {first_batch[-1]:.2f} s), "
                  f"pure encode {encode_runs[-1]:.2f} s, ratio {ingest_runs[-1] / encode_runs[-1]:.3f}  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)

        t = time.perf_counter()
        again = pipeline.ingest_paths(corpus, index_dir, config)  # no embedder: an unchanged corpus needs none
        reingest_s = time.perf_counter() - t

    ingest_s, encode_s = statistics.median(ingest_runs), statistics.median(encode_runs)
    files = len(report.added)
    chunks = report.chunks_added
    ratio = ingest_s / encode_s if encode_s else float("nan")
    re_share = reingest_s / ingest_s if ingest_s else float("nan")
    print(f"corpus:           {', '.join(str(p) for p in paths)}" + (f"  (x{args.repeat})" if args.repeat > 1 else ""))
    print(f"model load:       {load_s:.2f} s (not part of the ingest time: the loaded embedder is passed in)")
    print(f"files:            {files} ingested, {len(report.failed)} failed, {len(report.skipped)} skipped")
    print(f"pages (PDF):      {report.pages}")
    print(f"chunks:           {chunks} ({report.chunks_embedded} unique texts embedded)")
    print(f"ingest:           {ingest_s:.2f} s (median)  ->  {chunks / ingest_s:.1f} chunks/s, "
          f"{report.pages / ingest_s:.1f} pages/s")
    last = ingest_runs[-1]
    other = last - sum(stages.values()) - report.embed_seconds
    breakdown = {**stages, "embed": report.embed_seconds, "other": other}
    print("  last round:     " + ", ".join(f"{k} {v:.2f} s ({100 * v / last:.0f}%)" for k, v in breakdown.items()))
    print(f"pure encode():    {encode_s:.2f} s for the same {len(texts)} texts, same batches")
    paired = statistics.median(i / e for i, e in zip(ingest_runs, encode_runs, strict=True))
    print(f"ingest / encode:  {paired:.3f} (median of the {args.rounds} rounds' own ratios; goal <= {GOAL_RATIO}: "
          f"{'met' if paired <= GOAL_RATIO else 'MISSED'}); {ratio:.3f} as a ratio of the medians; first batch "
          f"started at {statistics.median(first_batch):.2f} s of the ingest")
    print(f"re-ingest:        {reingest_s:.3f} s unchanged ({len(again.unchanged)} files) = {re_share:.4f} "
          f"of the first (goal <= {GOAL_REINGEST}: {'met' if re_share <= GOAL_REINGEST else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
