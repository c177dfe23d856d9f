"""Helpers for the evaluation tests: a tiny corpus, question lines and hand-made result records."""

from __future__ import annotations

import json
from pathlib import Path

from eval.questions import Question, Source
from eval.results import Context, EvalResult, Retrieved
from rag.records import Citation, ClaimVerdict

DOCS = {
    "volcanoes.txt": (
        "Mount Etna is the most active volcano in Europe. It stands on the island of Sicily in Italy.\n\n"
        "Etna is about 3,357 metres high. Its eruptions have been recorded since 1500 BC.\n\n"
        "Vesuvius destroyed the Roman town of Pompeii in the year 79. Vesuvius is not active today in the "
        "sense of a continuous eruption."
    ),
    "rivers.txt": (
        "The Danube flows through ten countries, more than any other river in the world. It is 2,850 kilometres "
        "long and ends in the Black Sea.\n\n"
        "The Rhine rises in the Swiss Alps and flows into the North Sea near Rotterdam."
    ),
    "sqlite.txt": (
        "SQLite stores the largest ROWID of an AUTOINCREMENT table in the internal table sqlite_sequence. "
        "The default page size is 4096 bytes. The PRAGMA foreign_keys setting is off by default."
    ),
}

QUESTIONS = [
    ("How high is Mount Etna?", "Etna is about 3,357 metres high.", ["3,357"], "volcanoes.txt", "numeric"),
    ("Which town did Vesuvius destroy?", "Vesuvius destroyed Pompeii in 79.", ["Pompeii"], "volcanoes.txt",
     "factoid"),
    ("How many countries does the Danube flow through?", "The Danube flows through ten countries.", ["ten"],
     "rivers.txt", "numeric"),
    ("Where does the Rhine flow into the sea?", "Into the North Sea near Rotterdam.", ["North Sea"], "rivers.txt",
     "factoid"),
    ("Which internal table holds the largest AUTOINCREMENT ROWID?", "The table sqlite_sequence.",
     ["sqlite_sequence"], "sqlite.txt", "factoid"),
    ("What is the default SQLite page size?", "4096 bytes.", ["4096"], "sqlite.txt", "numeric"),
]


def question_lines(n: int) -> list[dict]:
    """n questions cycling through QUESTIONS (plus an unanswerable one every seventh), ids q-001..."""
    out = []
    for i in range(n):
        if i % 7 == 6:
            out.append({"id": f"q-{i + 1:03d}", "question": "What is the capital of Mongolia?",
                        "reference_answer": "The documents do not say.", "answer_keywords": [],
                        "reference_sources": [], "answerable": False, "type": "unanswerable"})
            continue
        q, a, kw, src, typ = QUESTIONS[i % len(QUESTIONS)]
        out.append({"id": f"q-{i + 1:03d}", "question": q, "reference_answer": a, "answer_keywords": kw,
                    "reference_sources": [{"source": src}], "answerable": True, "type": typ})
    return out


def write_questions(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in question_lines(n)), encoding="utf-8")
    return path


# -- hand-made records ------------------------------------------------------------------------------------------

def make_question(qid: str = "q1", answerable: bool = True, keywords: tuple[str, ...] = ("2014",),
                  sources: tuple[Source, ...] = (Source("a.txt"),), qtype: str = "numeric",
                  reference: str = "GANs appeared in 2014.") -> Question:
    if not answerable:
        return Question(qid, "Unanswerable?", "The documents do not say.", (), (), False, "unanswerable")
    return Question(qid, f"Question {qid}?", reference, keywords, sources, True, qtype)


def verdict(supported: bool, claim: str = "A claim.") -> ClaimVerdict:
    return ClaimVerdict(claim=claim, supported=supported, score=0.9 if supported else 0.1,
                        reason="" if supported else "similarity 0.10 below 0.28", cited=(1,))


def make_result(q: Question, answer: str = "GANs appeared in 2014 [1].", refused: bool = False,
                verdicts: tuple[ClaimVerdict, ...] = (), retrieved: tuple[tuple[str, int | None], ...] = (("a.txt",
                None),), error: str = "") -> EvalResult:
    return EvalResult(
        question=q, answer="" if error else answer, refused=refused,
        refusal_reason="weak evidence" if refused else "",
        citations=() if refused or error else (Citation(1, "c1", "a.txt", None, "", "GANs appeared in 2014."),),
        retrieved=tuple(Retrieved(i, s, p, f"c{i}", 1.0 / i) for i, (s, p) in enumerate(retrieved, start=1)),
        contexts=() if refused or error else (Context(1, "a.txt", None, "", "GANs appeared in 2014."),),
        verdicts=verdicts, model="test", usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        timings={"total": 0.5}, error=error)
