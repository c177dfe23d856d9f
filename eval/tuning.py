"""Choosing the answer path's thresholds on dev data only, reproducibly.

    python -m eval.tuning checker --labelled corpora/labelled/dev.jsonl corpora/labelled/shipped/dev-*.jsonl --out runs/tuning
    python -m eval.tuning answerability --questions corpora/lecture/questions/dev.jsonl=INDEX ... --out runs/tuning
    RAG_ANSWER__MIN_ANSWERABILITY=0 rag eval corpora/lecture/questions/dev.jsonl --index INDEX --out runs/gate-off
    python -m eval.tuning gate --runs runs/gate-off ... --out runs/tuning

`checker`: the LLM judge's P(yes) (and the local signals) for every sentence of the labelled dev answers, then
the rule and threshold with the best F1 of unsupported-sentence detection. `answerability`: the judge's
P(the passages answer the question) for every dev question, then the threshold with the best balance of
refused unanswerable and falsely refused answerable questions. Signals are cached in the output folder
(`*-signals.jsonl`), so re-running only re-decides. `gate`: the same threshold chosen end to end, from dev runs
answered with the gate off: what each question's answer became (refused by the checks, right, wrong) decides, not
P alone. Never point this at a test split.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]
MISCITATION_MARGINS = (0.1, 0.2, 0.3)


@dataclass(frozen=True)
class SentenceSignals:
    item: str
    sentence: int
    unsupported: bool  # the human label
    entailment: float | None
    missing: int  # numbers, names, identifiers of the sentence not found in its cited contexts
    similarity: float
    lexical: float
    negation: bool
    miscitation: float = 0.0  # share of its words an uncited block holds beyond the best cited one


def _f1(pairs: Sequence[tuple[bool, bool]]) -> tuple[float, float, float]:
    tp = sum(p and f for p, f in pairs)
    fp = sum(f and not p for p, f in pairs)
    fn = sum(p and not f for p, f in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, (2 * tp / (2 * tp + fp + fn) if tp else 0.0)


def choose_checker(signals: Sequence[SentenceSignals]) -> dict[str, Any]:
    """The rule and thresholds with the best dev F1 of unsupported-sentence detection: "judge" flags P(yes) < t,
    "judge+terms" also a missing number/name/identifier, "judge+terms+miscitation" also a sentence an uncited block
    supports better by more than m. Ties go to the higher precision, then to t nearest 0.5."""
    trials = []
    for rule in ("judge", "judge+terms", "judge+terms+miscitation"):
        for m in (MISCITATION_MARGINS if rule.endswith("miscitation") else (1.0,)):
            for t in THRESHOLDS:
                flags = [(s.unsupported, (s.entailment is not None and s.entailment < t)
                          or ("terms" in rule and s.missing > 0) or s.miscitation > m) for s in signals]
                p, r, f = _f1(flags)
                trials.append({"rule": rule, "min_entailment": t, "max_miscitation": m, "precision": round(p, 4),
                               "recall": round(r, 4), "f1": round(f, 4)})
    best = max(trials, key=lambda x: (x["f1"], x["precision"], -abs(x["min_entailment"] - 0.5)))
    return {"chosen": best, "trials": trials, "sentences": len(signals),
            "unsupported": sum(s.unsupported for s in signals)}


def choose_answerability(rows: Sequence[dict[str, Any]], max_false_refusal: float = 0.10) -> dict[str, Any]:
    """The threshold on P(answerable) (refuse below it) with the most unanswerable questions refused while at
    most `max_false_refusal` of answerable ones are refused; ties go to the lower threshold."""
    ans = [r["p"] for r in rows if r["answerable"] and r["p"] is not None]
    una = [r["p"] for r in rows if not r["answerable"] and r["p"] is not None]
    curve = []
    for t in THRESHOLDS:
        false_refusal = sum(p < t for p in ans) / len(ans) if ans else 0.0
        refused = sum(p < t for p in una) / len(una) if una else 0.0
        curve.append({"threshold": t, "unanswerable_refused": round(refused, 4),
                      "answerable_refused": round(false_refusal, 4)})
    ok = [c for c in curve if c["answerable_refused"] <= max_false_refusal] or curve[:1]
    best = max(ok, key=lambda c: (c["unanswerable_refused"], -c["answerable_refused"], -c["threshold"]))
    return {"chosen": best, "curve": curve, "answerable": len(ans), "unanswerable": len(una),
            "max_false_refusal": max_false_refusal}


@dataclass(frozen=True)
class GateRow:
    """One dev question of a run: its answerability P (None: refused or failed before P was computed) and what
    the answer path made of it with no threshold above the run's own."""
    id: str
    answerable: bool
    p: float | None
    refused: bool  # refused anyway: by the model, the claim checks or the evidence floor; or the answer errored
    correct: bool  # answerable, shown, and holding every answer keyword


def gate_rows(runs: Sequence[Path]) -> tuple[list[GateRow], float]:
    """The questions of `rag eval` run folders, and the highest threshold they were answered with (the curve is
    known only at and above it)."""
    rows: list[GateRow] = []
    floor = 0.0
    for run in runs:
        settings = json.loads((run / "run.json").read_text(encoding="utf-8")).get("settings") or {}
        floor = max(floor, float(settings.get("answer", {}).get("min_answerability", 0.0)))
        for d in _read(run / "results.jsonl"):
            if "test" in str(d["id"]).split("-"):
                raise SystemExit(f"{run}: question {d['id']} looks like a test question; tuning reads dev runs only")
            p = d.get("answerability") if d.get("answerability_source") == "answerability" else None
            failed = bool(d.get("error")) or p is None
            rows.append(GateRow(d["id"], bool(d["answerable"]), p, bool(d["refused"]) or failed,
                                bool(d["answerable"]) and not d["refused"] and not failed
                                and bool((d.get("scores") or {}).get("keywords_ok"))))
    return rows, floor


def choose_gate(rows: Sequence[GateRow], floor: float = 0.0, min_unanswerable_refused: float = 0.8,
                step: float = 0.01) -> dict[str, Any]:
    """The answerability threshold with the best end-to-end utility on dev runs answered with the gate at `floor`:
    +1 for a right answer (every keyword), -1 for any other answer shown (a wrong answer, or any answer to an
    unanswerable question), 0 for a refusal; among thresholds refusing at least `min_unanswerable_refused` of the
    unanswerable questions (all of them if none does). Ties go to the middle of the tied thresholds (the higher of
    two middles), as far as the data allow from the answers gained or lost on either side."""
    una = sum(not r.answerable for r in rows)
    ans = len(rows) - una
    curve = []
    for i in range(int(round(floor / step)), int(round(1 / step)) + 1):
        t = round(i * step, 4)
        shown = [r for r in rows if not r.refused and r.p is not None and r.p >= t]
        right = sum(r.correct for r in shown)
        una_refused = una - sum(not r.answerable for r in shown)
        ans_refused = ans - sum(r.answerable for r in shown)
        curve.append({"threshold": t, "utility": right - (len(shown) - right), "right": right,
                      "wrong": len(shown) - right,
                      "unanswerable_refused": round(una_refused / una, 4) if una else None,
                      "answerable_refused": round(ans_refused / ans, 4) if ans else None})
    ok = [c for c in curve if c["unanswerable_refused"] is None or c["unanswerable_refused"] >= min_unanswerable_refused]
    pool = ok or curve[-1:]
    top = max(c["utility"] for c in pool)
    tied = [c for c in pool if c["utility"] == top]
    best = tied[len(tied) // 2]
    return {"chosen": best, "curve": curve, "answerable": ans, "unanswerable": una, "run_threshold": floor,
            "min_unanswerable_refused": min_unanswerable_refused}


def checker_signals(labelled: Sequence[Path], out: Path, config: Any) -> list[SentenceSignals]:
    from eval.labelled import load_items
    from rag.factory import build_checker, build_embedder, build_llm

    cache = out / "checker-signals.jsonl"
    done = {(d["item"], d["sentence"]): SentenceSignals(**d) for d in _read(cache)}
    items = [it for path in labelled for it in load_items(path)]
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise SystemExit(f"item id {it.id!r} occurs in more than one of the labelled files; ids key the cache")
        seen.add(it.id)
    todo = [it for it in items if any((it.id, i) not in done for i in range(len(it.sentences)))]
    if todo:
        embedder = build_embedder(config)
        llm = build_llm(config, embedder=embedder)
        checker = build_checker(config, embedder, judge=llm)
        with open(cache, "a", encoding="utf-8") as fh:
            for n, it in enumerate(todo, start=1):
                for i, s in enumerate(it.sentences):
                    if (it.id, i) in done:
                        continue
                    contexts = list(it.contexts_of(s))
                    others = [c for n, c in enumerate(it.contexts, start=1) if n not in s.cited] if s.cited else []
                    p = checker.entailment(s.text, contexts, cited=bool(s.cited), labels=it.sources_of(s) or None)
                    sig = checker.signals(s.text, contexts, it.question, others=others)
                    row = SentenceSignals(it.id, i, s.unsupported, p, len(sig.missing), round(sig.similarity, 4),
                                          round(sig.lexical, 4), bool(sig.negation), sig.miscitation)
                    done[(it.id, i)] = row
                    fh.write(json.dumps(asdict(row)) + "\n")
                    fh.flush()
                log.info("checker signals: %d/%d items", n, len(todo))
        getattr(llm, "close", lambda: None)()
    return [done[(it.id, i)] for it in items for i in range(len(it.sentences))]


def answerability_rows(pairs: Sequence[str], out: Path, config: Any) -> list[dict[str, Any]]:
    from eval.questions import load_questions
    from rag.api import open_pipeline
    from rag.factory import build_checker, build_embedder, build_llm
    from rag.prompt import blocks_for, build_prompt

    cache = out / "answerability-signals.jsonl"
    done = {d["id"]: d for d in _read(cache)}
    embedder = llm = checker = None
    rows = []
    with open(cache, "a", encoding="utf-8") as fh:
        for pair in pairs:
            qfile, sep, index = pair.partition("=")
            if not sep:
                raise SystemExit(f"expected QUESTIONS.jsonl=INDEX_DIR, got {pair!r}")
            questions = load_questions(qfile)
            if all(q.id in done for q in questions):
                rows += [done[q.id] for q in questions]
                continue
            if embedder is None:
                embedder = build_embedder(config)
                llm = build_llm(config, embedder=embedder)
                checker = build_checker(config, embedder, judge=llm)
            with open_pipeline(index, config, embedder=embedder, llm=llm) as r:
                for q in questions:
                    if q.id not in done:
                        result = r.search(q.question)
                        blocks = blocks_for(result.hits, config.answer, llm.count_tokens)
                        p = checker.answerability(build_prompt(q.question, blocks)) if blocks else 0.0
                        done[q.id] = {"id": q.id, "answerable": q.answerable, "p": p,
                                      "best_dense": result.evidence.best_dense,
                                      "keyword_overlap": result.evidence.keyword_overlap}
                        fh.write(json.dumps(done[q.id]) + "\n")
                        fh.flush()
                    rows.append(done[q.id])
    if llm is not None:
        getattr(llm, "close", lambda: None)()
    return rows


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    from rag.config import find_config_file, load_config

    ap = argparse.ArgumentParser(prog="python -m eval.tuning", description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["checker", "answerability", "gate"])
    ap.add_argument("--labelled", type=Path, nargs="*", default=[], help="labelled DEV answers (checker)")
    ap.add_argument("--questions", nargs="*", default=[], help="DEV QUESTIONS.jsonl=INDEX_DIR pairs (answerability)")
    ap.add_argument("--runs", type=Path, nargs="*", default=[],
                    help="`rag eval` folders of DEV questions answered with the gate off (gate)")
    ap.add_argument("--min-unanswerable-refused", type=float, default=0.8,
                    help="gate: the share of unanswerable dev questions the chosen threshold must refuse")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    names = [str(p) for p in args.labelled] + list(args.questions) + [str(p) for p in args.runs]
    if any("test" in Path(n.partition("=")[0]).name for n in names):
        raise SystemExit("tuning reads dev data only; a file named like a test split was given")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "gate":
        if not args.runs:
            raise SystemExit("--runs DEV_RUN [DEV_RUN ...] is required")
        rows, floor = gate_rows(args.runs)
        result = {**choose_gate(rows, floor, args.min_unanswerable_refused), "rows": [asdict(r) for r in rows]}
    elif args.what == "checker":
        if not args.labelled:
            raise SystemExit("--labelled DEV.jsonl [DEV2.jsonl ...] is required")
        result = choose_checker(checker_signals(args.labelled, args.out, load_config(find_config_file())))
    else:
        result = choose_answerability(answerability_rows(args.questions, args.out, load_config(find_config_file())))
    (args.out / f"{args.what}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    json.dump(result["chosen"], sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
