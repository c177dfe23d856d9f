"""Dev only, tried and rejected (corpora/labelled/tuning/README.md, quote-grammar-dev.jsonl): a second draft
constrained by a llama.cpp grammar to one sentence of the answer's blocks, copied exactly with its block number, or
the refusal. For each question of the given dev question files (the ones the checks refused), the answer path's
blocks and prompt are built, the model picks under the grammar, and the picked sentence is checked as the answer
path would check it (the claim check, and whether it gives what the question asks for). One JSON line per question.

    python corpora/labelled/tools/quote_grammar.py OUT.jsonl CORPUS=INDEX=QUESTIONS.jsonl ...
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from eval.scores import keywords_present  # noqa: E402
from rag.api import open_pipeline  # noqa: E402
from rag.config import load_config  # noqa: E402
from rag.prompt import REFUSAL, blocks_for, build_prompt  # noqa: E402
from rag.text import content_words, split_sentences  # noqa: E402
from rag.verify.asked import not_given  # noqa: E402


def literal(text: str) -> str:
    """A GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + escaped.replace("\r", "") + '"'


def main(out: Path, specs: list[str]) -> None:
    from llama_cpp import LlamaGrammar

    config = load_config(ROOT / "config.toml")
    with out.open("w") as fh:
        for spec in specs:
            _, index, questions = spec.split("=", 2)
            pipeline = open_pipeline(index, config)
            answerer = pipeline.answerer
            llm, checker = answerer.llm, answerer.checker
            for line in Path(questions).read_text().splitlines():
                q = json.loads(line)
                t = time.perf_counter()
                blocks = blocks_for(answerer.retriever.search(q["question"]).hits, config.answer, llm.count_tokens)
                prompt = build_prompt(q["question"], blocks)
                p_answer = checker.answerability(prompt)
                choices = [(f"{s} [{b.number}]", s, b.number) for b in blocks for s in split_sentences(b.text)
                           if len(content_words(s)) >= 2]
                grammar = LlamaGrammar.from_string(
                    "root ::= " + " | ".join(literal(c) for c, _, _ in choices) + " | " + literal(REFUSAL),
                    verbose=False)
                quote = prompt.follow_up(
                    f"Question: {q['question']}\n\nReply with the one sentence of the documents above that answers "
                    f"this question, copied exactly, with its document number. If no sentence answers it, reply "
                    f"exactly: {REFUSAL}", max_tokens=300)
                with llm._lock:  # noqa: SLF001 (a dev experiment on the local model's own llama.cpp object)
                    reply = llm._llm.create_completion(prompt=llm.tokens(quote), max_tokens=300, temperature=0.0,  # noqa: SLF001
                                                       grammar=grammar)
                text = reply["choices"][0]["text"].strip()
                row = {"id": q["id"], "answerable": q.get("answerable", True), "kw": q.get("answer_keywords", []),
                       "p_ans": p_answer, "text": text, "secs": round(time.perf_counter() - t, 1)}
                picked = [c for c in choices if c[0] == text]
                if picked:
                    _, sentence, number = picked[0]
                    verdict = checker.check_claim(q["question"], sentence, (number,), blocks)
                    row.update(supported=verdict.supported, P=verdict.score, reason=verdict.reason,
                               lacks=not_given(q["question"], sentence),
                               kw_in=bool(row["kw"]) and keywords_present(sentence, row["kw"]))
                fh.write(json.dumps(row) + "\n")
            pipeline.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
