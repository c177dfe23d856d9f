"""Question files: the corpora's sets load, and malformed lines fail with file:line and what is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.errors import QuestionError
from eval.questions import Source, load_questions

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"id": "x-001", "question": "Q?", "reference_answer": "A.", "answer_keywords": ["A"],
        "reference_sources": [{"source": "doc.pdf", "page": 3}], "answerable": True, "type": "factoid"}


def write(tmp_path: Path, *objs: object) -> Path:
    p = tmp_path / "q.jsonl"
    p.write_text("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n", encoding="utf-8")
    return p


SETS = sorted((ROOT / "corpora").glob("*/questions/*.jsonl"))


@pytest.mark.parametrize("path", SETS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_corpus_question_sets_load(path: Path) -> None:
    qs = load_questions(path)
    assert qs and len({q.id for q in qs}) == len(qs)
    assert any(not q.answerable for q in qs)
    for q in qs:
        assert q.answerable == bool(q.reference_sources)


def test_parses_typed_records(tmp_path: Path) -> None:
    [q] = load_questions(write(tmp_path, GOOD, ""))
    assert q.reference_sources == (Source("doc.pdf", 3),)
    assert q.answer_keywords == ("A",)
    assert q.to_dict() == GOOD


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "invalid JSON"),
    ({k: v for k, v in GOOD.items() if k != "question"}, "missing key(s) question"),
    ({**GOOD, "extra": 1}, "unknown key(s) extra"),
    ({**GOOD, "type": "trivia"}, "type 'trivia' is not known; valid types are: factoid"),
    ({**GOOD, "answerable": "yes"}, "'answerable' must be a bool"),
    ({**GOOD, "reference_sources": [{"source": "a.pdf", "page": 0}]}, "page must be a 1-based integer"),
    ({**GOOD, "reference_sources": []}, "needs at least one reference source"),
    ({**GOOD, "answerable": False, "type": "unanswerable"}, "an unanswerable question has"),
    ([1, 2], "expected a JSON object"),
])
def test_errors_name_file_and_line(tmp_path: Path, line: object, message: str) -> None:
    other = {**GOOD, "id": "x-000"}
    path = write(tmp_path, other, line)
    with pytest.raises(QuestionError) as e:
        load_questions(path)
    assert f"{path}:2:" in str(e.value)
    assert message in str(e.value)


def test_duplicate_ids_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(QuestionError, match=r"q.jsonl:3: duplicate id 'x-001' \(first on line 1\)"):
        load_questions(write(tmp_path, GOOD, "", GOOD))
    with pytest.raises(QuestionError, match="no questions"):
        load_questions(write(tmp_path, ""))
    with pytest.raises(QuestionError, match="question file not found"):
        load_questions(tmp_path / "missing.jsonl")
