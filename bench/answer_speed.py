"""Seconds per verified answer and to the first shown sentence, for settings side by side (run by hand; prints).

    python bench/answer_speed.py --index DIR --questions corpora/lecture/questions/dev.jsonl \
        [--limit 6] [--settings threads=1 threads=2 "threads=2,context=700" blocks=3 reuse=0 reuse=1 requant=0 requant=q4_0]

Every setting answers the same dev questions through the full default pipeline (answerability, drafting,
checks), interleaved question by question (A B A B ...) so that background load falls on all settings alike.
Each setting has its own local model in this process. Prints per-setting medians: wall seconds per answer, seconds
to the first streamed text, and how many were refused. Use dev questions: this is for choosing defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from rag.api import open_pipeline  # noqa: E402
from rag.config import find_config_file, load_config  # noqa: E402
from rag.records import Answer  # noqa: E402


def _overrides(spec: str) -> dict[str, object]:
    keys = {"threads": "llm.local.threads", "context": "answer.context_tokens", "max_tokens": "llm.local.max_tokens",
            "flash_attn": "llm.local.flash_attn", "blocks": "answer.max_blocks",
            "score": "answer.min_block_score", "reuse": "llm.local.reuse_answer_cache",
            "requant": "llm.local.requantize"}
    out: dict[str, object] = {}
    for part in filter(None, spec.split(",")):
        name, _, value = part.partition("=")
        convert = {"flash_attn": lambda v: bool(int(v)), "reuse": lambda v: bool(int(v)), "score": float,
                   "requant": lambda v: "" if v in ("", "0") else v}.get(name, int)
        out[keys[name]] = convert(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--settings", nargs="+", default=["threads=1", "threads=2"])
    args = ap.parse_args(argv)
    if "test" in args.questions.name:
        raise SystemExit("choose defaults on dev questions, not on a test split")
    base = load_config(find_config_file())
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    questions = questions[: args.limit]
    pipes = {s: open_pipeline(args.index, base.with_overrides(**_overrides(s))) for s in args.settings}
    walls: dict[str, list[float]] = {s: [] for s in pipes}
    firsts: dict[str, list[float]] = {s: [] for s in pipes}
    refused = dict.fromkeys(pipes, 0)
    try:
        for q in questions:
            for s, pipe in pipes.items():
                t0 = time.perf_counter()
                first = None
                final = None
                for item in pipe.stream(q):
                    if isinstance(item, Answer):
                        final = item
                    elif first is None and item:
                        first = time.perf_counter() - t0
                wall = time.perf_counter() - t0
                walls[s].append(wall)
                if first is not None:
                    firsts[s].append(first)
                refused[s] += bool(final is not None and final.refused)
                print(f"{s:>24}  {wall:6.1f} s  first {first if first is not None else float('nan'):6.1f} s  "
                      f"load {os.getloadavg()[0]:.1f}  {q[:60]}", flush=True)
    finally:
        for pipe in pipes.values():
            pipe.close()
    print(f"\n{len(questions)} questions of {args.questions}, interleaved; medians:")
    for s in pipes:
        f = f"{statistics.median(firsts[s]):.1f} s" if firsts[s] else "-"
        print(f"{s:>24}: {statistics.median(walls[s]):6.1f} s per answer, first text {f}, refused {refused[s]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
