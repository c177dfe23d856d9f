"""Dev only: P(yes) of fragment wordings on the labelled dev fragments (<= 4 content words), one JSON line per
sentence to the file named by argv[1] (corpora/labelled/tuning/fragment-wordings-dev.jsonl).

    python corpora/labelled/tools/fragment_wordings.py OUT.jsonl
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from eval.labelled import load_items  # noqa: E402
from rag.config import load_config  # noqa: E402
from rag.factory import build_embedder, build_llm  # noqa: E402
from rag.prompt import blocks_from_texts, build_prompt  # noqa: E402
from rag.text import content_words  # noqa: E402
from rag.verify.entailment import ask, claim_instruction  # noqa: E402


def where(cited: tuple[int, ...]) -> str:
    if not cited:
        return "one of the documents above"
    if len(cited) == 1:
        return f"document [{cited[0]}] above"
    return "documents " + ", ".join(f"[{n}]" for n in cited[:-1]) + f" and [{cited[-1]}] above"


def composed(question: str, fragment: str, cited: tuple[int, ...]) -> str:  # E
    return claim_instruction(f'The answer to the question "{question}" is: {fragment}', cited)


def proposed(question: str, fragment: str, cited: tuple[int, ...]) -> str:  # F
    return (f"Question: {question}\nProposed answer: {fragment}\n\nAnswer yes only if {where(cited)} states that "
            "this is the answer to this question (the same values, names and facts). If it mentions this but not as "
            "the answer to this question, or says something different, answer no. Reply with yes or no.")


def main() -> None:
    config = load_config(None)
    items = load_items(Path(__file__).resolve().parents[1] / "dev.jsonl")
    embedder = build_embedder(config)
    llm = build_llm(config, embedder=embedder)
    with open(sys.argv[1], "a", encoding="utf-8") as out:
        for it in sorted(items, key=lambda it: (it.question, tuple(it.contexts))):
            fragments = [(i, s) for i, s in enumerate(it.sentences)
                         if len(content_words(re.sub(r"\[\d+\]", "", s.text))) <= 4]
            if not fragments:
                continue
            prompt = build_prompt(it.question, blocks_from_texts(list(it.contexts)))  # shared prefix: KV cache
            for i, s in fragments:
                t = time.time()
                row = {"item": it.id, "sentence": i, "unsupported": s.unsupported, "text": s.text,
                       "B": ask(llm, prompt, claim_instruction(s.text, s.cited)),
                       "E": ask(llm, prompt, composed(it.question, s.text, s.cited)),
                       "F": ask(llm, prompt, proposed(it.question, s.text, s.cited)), "s": round(time.time() - t, 1)}
                out.write(json.dumps(row) + "\n")
                out.flush()


if __name__ == "__main__":
    main()
