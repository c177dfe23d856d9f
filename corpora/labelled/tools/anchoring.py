"""Dev only: how the anchoring rule (rag.verify.terms.unanchored_number) sorts the labelled dev sentences, per
window. Local and fast: no model. Reads the dev answers read by people (labelled/dev.jsonl and every
labelled/shipped/dev-*.jsonl; a re-cited row the answer path did not show is left out) and prints, for each window,
how many supported and unsupported sentences the rule applies to and flags, then the flagged ones.

    python corpora/labelled/tools/anchoring.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from rag.verify.terms import extract_terms, numbers_in, unanchored_number  # noqa: E402

LABELLED = ROOT / "corpora" / "labelled"


def sentences() -> Iterator[tuple[str, str, str, list[str], str]]:
    """(item id, question, sentence, its cited contexts, label) of every labelled dev sentence."""
    files = [LABELLED / "dev.jsonl", *sorted((LABELLED / "shipped").glob("dev-*.jsonl"))]
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            it = json.loads(line)
            for s in it["sentences"]:
                if s.get("citation") == "re-cited" and not s.get("kept"):
                    continue
                if s["label"] not in ("supported", "unsupported"):
                    continue
                ctx = [it["contexts"][n - 1] for n in s["cited"] if 0 < n <= len(it["contexts"])] or it["contexts"]
                yield it["id"], it["question"], s["text"], ctx, s["label"]


def applies(question: str, claim: str) -> bool:
    """The rule has something to check: a number the question does not give, and a subject the question names."""
    t, q = extract_terms(claim), extract_terms(question)
    asked = {x.lower() for x in q.names + q.identifiers}
    given = numbers_in(question, context=True)
    return any(n not in given for n in t.numbers) and any(x.lower() in asked for x in t.names + t.identifiers)


def main() -> None:
    cases = [c for c in sentences() if applies(c[1], c[2])]
    for window in (0, 1, 2, 3):
        counts: Counter[tuple[str, bool]] = Counter()
        for _, question, claim, ctx, label in cases:
            counts[label, bool(unanchored_number(claim, question, ctx, window))] += 1
        print(f"window {window}: unsupported flagged {counts['unsupported', True]} of "
              f"{counts['unsupported', True] + counts['unsupported', False]}, supported flagged "
              f"{counts['supported', True]} of {counts['supported', True] + counts['supported', False]}")
    for item, question, claim, ctx, label in cases:
        why = unanchored_number(claim, question, ctx)
        if why:
            print(f"  {label:11s} {item}: {claim[:90]} ({why})")


if __name__ == "__main__":
    main()
