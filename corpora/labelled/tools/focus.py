"""Dev only, tried and rejected (corpora/labelled/tuning/README.md, focus-dev.jsonl): the judge reading only the
lines of the cited block around a sentence's own numbers and names (those its question does not give: each line
holding one, with one line either side) instead of the whole block. One JSON line per labelled dev sentence with
one citation whose excerpt is shorter than its block, to the file named by argv[1]; then the AUCs and, among the
sentences the checks pass today, what each bar of the excerpt's P would flag.

    python corpora/labelled/tools/focus.py OUT.jsonl
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from eval.labelled import load_items  # noqa: E402
from rag.config import load_config  # noqa: E402
from rag.factory import build_checker, build_embedder, build_llm  # noqa: E402
from rag.prompt import blocks_from_texts  # noqa: E402
from rag.text import split_sentences, without_attribution  # noqa: E402
from rag.verify.entailment import ask, claim_prompt  # noqa: E402
from rag.verify.terms import extract_terms, numbers_in, term_present  # noqa: E402

LABELLED = ROOT / "corpora" / "labelled"


def rows() -> Iterator[tuple[str, str, str, str]]:
    """(question, sentence, its one cited block, label) of the labelled dev sentences, each once."""
    seen: set[tuple[str, str, str]] = set()
    for path in [LABELLED / "dev.jsonl", *sorted((LABELLED / "shipped").glob("dev-*.jsonl"))]:
        for item in load_items(path):  # refusals are left out; cited numbers are valid context numbers
            for s in item.sentences:
                key = (item.question, s.text, item.contexts[s.cited[0] - 1]) if len(s.cited) == 1 else None
                if key is not None and key not in seen:
                    seen.add(key)
                    yield (*key, "unsupported" if s.unsupported else "supported")
    for path in sorted((LABELLED / "pairs").glob("dev-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            it = json.loads(line)
            if it["label"] in ("supported", "unsupported") and len(it["cited_blocks"]) == 1:
                key = (it["question"], it["sentence"], it["cited_blocks"][0])
                if key not in seen:
                    seen.add(key)
                    yield (*key, it["label"])


def excerpt(claim: str, question: str, block: str) -> str | None:
    """The block's lines (sentences within a line) holding the claim's own numbers and names, one either side."""
    terms = extract_terms(claim)
    given = numbers_in(question, context=True)
    numbers = [n for n in terms.numbers if n not in given]
    names = [x for x in terms.names + terms.identifiers + terms.quoted if not term_present(x, question.lower())]
    units = [u for line in block.splitlines() if line.strip() for u in (split_sentences(line) or [line.strip()])]
    keep: set[int] = set()
    for i, u in enumerate(units):
        if any(n in numbers_in(u, context=True) for n in numbers) or any(term_present(x, u.lower()) for x in names):
            keep.update(range(max(0, i - 1), min(len(units), i + 2)))
    return " ".join(units[i] for i in sorted(keep)) if keep else None


def auc(pos: list[float], neg: list[float]) -> float:
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / max(1, len(pos) * len(neg))


def main(out_path: str) -> None:
    config = load_config()
    embedder = build_embedder(config)
    checker = build_checker(config, embedder, judge=build_llm(config, embedder=embedder))
    out = []
    with open(out_path, "w", encoding="utf-8") as fh:
        for question, sentence, block, label in rows():
            claim = without_attribution(sentence)
            part = excerpt(claim, question, block)
            if part is None or part.strip() == block.strip():
                continue
            v = checker.check_claim(question, sentence, (1,), blocks_from_texts([block]))
            p = ask(checker.judge, claim_prompt(claim, [part]))  # type: ignore[arg-type]
            row = {"question": question, "sentence": sentence, "label": label, "excerpt": part, "p_block": v.score,
                   "supported_now": v.supported, "reason": v.reason, "p_focus": p}
            out.append(row)
            fh.write(json.dumps(row) + "\n")
    un = [r for r in out if r["label"] == "unsupported"]
    su = [r for r in out if r["label"] == "supported"]
    print(f"{len(out)} sentences ({len(un)} unsupported): AUC of 1 - P over the block "
          f"{auc([-r['p_block'] for r in un], [-r['p_block'] for r in su]):.3f}, over the excerpt "
          f"{auc([-r['p_focus'] for r in un], [-r['p_focus'] for r in su]):.3f}")
    for bar in (0.3, 0.35, 0.4, 0.45, 0.5):
        flagged = [r for r in out if r["supported_now"] and r["p_focus"] < bar]
        print(f"below {bar:.2f}: flags {sum(r['label'] == 'unsupported' for r in flagged)} unsupported and "
              f"{sum(r['label'] == 'supported' for r in flagged)} supported sentences the checks pass today")


if __name__ == "__main__":
    main(sys.argv[1])
