"""Question files: the corpora's sets load; the open format (type optional and free-form, extra keys kept,
optional fields for unanswerable questions); malformed lines fail with file:line and what is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.errors import QuestionError
from eval.questions import Question, Source, load_questions

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
        assert q.answerable == bool(q.reference_sources) == bool(q.answer_keywords)
        assert q.type  # the corpora's own files keep all seven keys


def test_parses_typed_records(tmp_path: Path) -> None:
    [q] = load_questions(write(tmp_path, GOOD, ""))
    assert q.reference_sources == (Source("doc.pdf", 3),)
    assert q.answer_keywords == ("A",)
    assert q.extra == {}
    assert q.to_line() == GOOD
    assert q.to_dict() == {**GOOD, "extra": {}}


def test_type_is_optional_and_free_form_and_extra_keys_are_kept(tmp_path: Path) -> None:
    """Old behaviour: a missing type, a type outside a closed list, or any extra key failed on line 1."""
    untyped = {k: v for k, v in GOOD.items() if k != "type"}
    analyst = {**GOOD, "id": "x-002", "type": "comparison", "question_type": "multi-hop",
               "evidence": {"quote": "A."}}
    a, b = load_questions(write(tmp_path, untyped, analyst))
    assert a.type == "" and a.extra == {}
    assert b.type == "comparison" and b.extra == {"question_type": "multi-hop", "evidence": {"quote": "A."}}
    assert b.to_line() == analyst
    assert Question.from_dict(b.to_dict()) == b


def test_unanswerable_questions_need_only_id_question_answerable(tmp_path: Path) -> None:
    [q] = load_questions(write(tmp_path, {"id": "u-1", "question": "Who?", "answerable": False, "note": "off topic"}))
    assert not q.answerable and q.answer_keywords == () and q.reference_sources == () and q.reference_answer == ""
    assert q.extra == {"note": "off topic"}


def test_an_answerable_question_without_keywords_is_a_data_error(tmp_path: Path) -> None:
    """Old behaviour: loaded, then scored "correct" whatever the answer said."""
    path = write(tmp_path, GOOD, {**GOOD, "id": "x-002", "answer_keywords": []})
    with pytest.raises(QuestionError, match=rf"{path}:2: an answerable question needs at least one answer keyword"):
        load_questions(path)


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "invalid JSON"),
    ({k: v for k, v in GOOD.items() if k != "question"}, "missing key(s) question"),
    ({k: v for k, v in GOOD.items() if k != "answerable"}, "missing key(s) answerable"),
    ({k: v for k, v in GOOD.items() if k != "answer_keywords"}, "an answerable question needs answer_keywords"),
    ({**GOOD, "type": 3}, "'type' must be a str"),
    ({**GOOD, "answerable": "yes"}, "'answerable' must be a bool"),
    ({**GOOD, "reference_sources": [{"source": "a.pdf", "page": 0}]}, "page must be a 1-based integer"),
    ({**GOOD, "reference_sources": []}, "needs at least one reference source"),
    ({**GOOD, "answerable": False}, "an unanswerable question has no answer_keywords"),
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
