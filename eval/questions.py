"""Question sets: JSONL files of questions with reference answers and sources, loaded into typed records.

One JSON object a line. Required: `id`, `question`, `answerable`. An answerable question also needs
`reference_answer`, `answer_keywords` (at least one) and `reference_sources` (at least one); for an unanswerable
one they may be left out (or empty). `type` is optional and free-form. Any other key is kept, in
`Question.extra`, and carried into results.jsonl. corpora/README.md ("Question format") documents it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.errors import QuestionError

REQUIRED = {"id": str, "question": str, "answerable": bool}
OPTIONAL = {"reference_answer": str, "answer_keywords": list, "reference_sources": list, "type": str}
KNOWN = (*REQUIRED, *OPTIONAL)


@dataclass(frozen=True)
class Source:
    """Where a reference answer is found: a path relative to the corpus's docs/ folder, and a PDF's page."""

    source: str
    page: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source} if self.page is None else {"source": self.source, "page": self.page}


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    reference_answer: str
    answer_keywords: tuple[str, ...]
    reference_sources: tuple[Source, ...]
    answerable: bool
    type: str = ""  # free-form ("" when the file gives none)
    extra: Mapping[str, Any] = field(default_factory=dict)  # the line's other keys, kept as they were

    def to_dict(self) -> dict[str, Any]:
        """The question's fields; its other keys under "extra" (so they never collide with a result's keys)."""
        return {"id": self.id, "question": self.question, "reference_answer": self.reference_answer,
                "answer_keywords": list(self.answer_keywords),
                "reference_sources": [s.to_dict() for s in self.reference_sources],
                "answerable": self.answerable, "type": self.type, "extra": dict(self.extra)}

    def to_line(self) -> dict[str, Any]:
        """The question as a line of a question file (its other keys at the top level again)."""
        d = self.to_dict()
        return {**{k: v for k, v in d.items() if k != "extra"}, **dict(self.extra)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "question") -> Question:
        """The inverse of to_dict (a results.jsonl line carries these keys)."""
        data = {k: d[k] for k in KNOWN if k in d}
        extra = d.get("extra") or {}
        if not isinstance(extra, dict):
            raise QuestionError(f"{where}: 'extra' must be an object, got {type(extra).__name__}")
        return parse_question(data, where, extra_keys=extra)


def parse_question(data: Any, where: str, extra_keys: Mapping[str, Any] | None = None) -> Question:
    """One question from a decoded JSON object; `where` ("file:line") prefixes every error.

    Keys other than the known ones go to `extra` (with `extra_keys`, those are taken as the extra keys instead).
    """
    if not isinstance(data, dict):
        raise QuestionError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise QuestionError(f"{where}: missing key(s) {', '.join(missing)}; every question has: "
                            f"{', '.join(REQUIRED)} (answerable ones also {', '.join(k for k in OPTIONAL if k != 'type')})")
    for key, kind in {**REQUIRED, **OPTIONAL}.items():
        if key in data and not isinstance(data[key], kind):
            raise QuestionError(f"{where}: {key!r} must be a {kind.__name__}, got {type(data[key]).__name__}: "
                                f"{data[key]!r:.60}")
    if not data["id"].strip() or not data["question"].strip():
        raise QuestionError(f"{where}: 'id' and 'question' must not be empty")
    keywords = data.get("answer_keywords", [])
    if not all(isinstance(k, str) and k.strip() for k in keywords):
        raise QuestionError(f"{where}: 'answer_keywords' must be a list of non-empty strings, got {keywords!r:.80}")
    sources = tuple(_source(s, where) for s in data.get("reference_sources", []))
    if data["answerable"]:
        absent = [k for k in ("reference_answer", "answer_keywords", "reference_sources") if k not in data]
        if absent:
            raise QuestionError(f"{where}: an answerable question needs {', '.join(absent)}")
        if not keywords:
            raise QuestionError(f"{where}: an answerable question needs at least one answer keyword (a number, name "
                                "or identifier a correct answer contains); 'answer_keywords' is empty")
        if not sources:
            raise QuestionError(f"{where}: an answerable question needs at least one reference source")
    elif keywords or sources:
        raise QuestionError(f"{where}: an unanswerable question has no answer_keywords and no reference_sources "
                            "(leave them out or empty)")
    extra = dict(extra_keys) if extra_keys is not None else {k: v for k, v in data.items() if k not in KNOWN}
    return Question(id=data["id"], question=data["question"], reference_answer=data.get("reference_answer", ""),
                    answer_keywords=tuple(keywords), reference_sources=sources, answerable=data["answerable"],
                    type=data.get("type", ""), extra=extra)


def _source(item: Any, where: str) -> Source:
    if not isinstance(item, dict) or not isinstance(item.get("source"), str) or not item["source"].strip():
        raise QuestionError(f"{where}: each reference source is an object with a 'source' path (and 'page'), "
                            f"got {item!r:.80}")
    extra = set(item) - {"source", "page"}
    if extra:
        raise QuestionError(f"{where}: unknown key(s) {', '.join(sorted(extra))} in a reference source; "
                            "valid keys are: source, page")
    page = item.get("page")
    if page is not None and (not isinstance(page, int) or isinstance(page, bool) or page < 1):
        raise QuestionError(f"{where}: reference source page must be a 1-based integer, got {page!r}")
    return Source(item["source"], page)


def parse_lines(lines: Iterable[str], name: str) -> list[Question]:
    """Questions from JSONL lines (blank lines skipped); duplicate ids are refused."""
    out: list[Question] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise QuestionError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from e
        q = parse_question(data, where)
        if q.id in seen:
            raise QuestionError(f"{where}: duplicate id {q.id!r} (first on line {seen[q.id]})")
        seen[q.id] = lineno
        out.append(q)
    return out


def load_questions(path: str | Path) -> list[Question]:
    """All questions of a JSONL file, validated; errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise QuestionError(f"{path}: question file not found") from e
    except UnicodeDecodeError as e:
        raise QuestionError(f"{path}: not UTF-8 text ({e.reason})") from e
    questions = parse_lines(text.splitlines(), str(path))
    if not questions:
        raise QuestionError(f"{path}: no questions")
    return questions
