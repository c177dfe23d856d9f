"""Question sets: JSONL files of questions with reference answers and sources, loaded into typed records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.errors import QuestionError

TYPES = ("factoid", "numeric", "definition", "procedural", "unanswerable")
KEYS = {"id": str, "question": str, "reference_answer": str, "answer_keywords": list, "reference_sources": list,
        "answerable": bool, "type": str}


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
    type: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "reference_answer": self.reference_answer,
                "answer_keywords": list(self.answer_keywords),
                "reference_sources": [s.to_dict() for s in self.reference_sources],
                "answerable": self.answerable, "type": self.type}


def parse_question(data: Any, where: str) -> Question:
    """One question from a decoded JSON object; `where` ("file:line") prefixes every error."""
    if not isinstance(data, dict):
        raise QuestionError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise QuestionError(f"{where}: missing key(s) {', '.join(missing)}; a question has: {', '.join(KEYS)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise QuestionError(f"{where}: unknown key(s) {', '.join(unknown)}; a question has: {', '.join(KEYS)}")
    for key, kind in KEYS.items():
        if not isinstance(data[key], kind):
            raise QuestionError(f"{where}: {key!r} must be a {kind.__name__}, got {type(data[key]).__name__}")
    if not data["id"].strip() or not data["question"].strip():
        raise QuestionError(f"{where}: 'id' and 'question' must not be empty")
    if data["type"] not in TYPES:
        raise QuestionError(f"{where}: type {data['type']!r} is not known; valid types are: {', '.join(TYPES)}")
    keywords = data["answer_keywords"]
    if not all(isinstance(k, str) and k.strip() for k in keywords):
        raise QuestionError(f"{where}: 'answer_keywords' must be a list of non-empty strings")
    sources = tuple(_source(s, where) for s in data["reference_sources"])
    if data["answerable"]:
        if data["type"] == "unanswerable":
            raise QuestionError(f"{where}: an answerable question cannot have type 'unanswerable'")
        if not sources:
            raise QuestionError(f"{where}: an answerable question needs at least one reference source")
    elif data["type"] != "unanswerable" or keywords or sources:
        raise QuestionError(f"{where}: an unanswerable question has type 'unanswerable', no answer_keywords "
                            "and no reference_sources")
    return Question(id=data["id"], question=data["question"], reference_answer=data["reference_answer"],
                    answer_keywords=tuple(keywords), reference_sources=sources, answerable=data["answerable"],
                    type=data["type"])


def _source(item: Any, where: str) -> Source:
    if not isinstance(item, dict) or not isinstance(item.get("source"), str) or not item["source"].strip():
        raise QuestionError(f"{where}: each reference source is an object with a 'source' path (and 'page')")
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
