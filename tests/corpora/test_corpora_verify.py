"""corpora/verify.py: the bundled corpora pass, and the checker's rules fail on small broken corpora built in tmp_path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

VERIFY_PY = Path(__file__).resolve().parents[2] / "corpora" / "verify.py"

DOC = ("Release 10.7 of the widget is painted teal. "
       "The names column holds the labels. The hard limit is 42 items.\n")


def _load_verify():
    spec = importlib.util.spec_from_file_location("corpora_verify", VERIFY_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verify = _load_verify()


def _answerable(qid: str, question: str, keywords: list[str], **extra: object) -> dict:
    return {"id": qid, "question": question, "reference_answer": "See the document.",
            "answer_keywords": keywords, "reference_sources": [{"source": "doc.txt"}],
            "answerable": True, "type": "factoid", **extra}


def _unanswerable(qid: str, question: str = "Who painted the widget?") -> dict:
    return {"id": qid, "question": question, "reference_answer": "The documents do not say.",
            "answer_keywords": [], "reference_sources": [], "answerable": False, "type": "unanswerable"}


def _split(split: str, first: dict | None = None, unanswerable: int = 1, total: int = 4) -> list[dict]:
    """`total` questions for toy-<split>: `first` (or a good one), good answerable ones, then `unanswerable`."""
    good = [("What colour is the widget?", ["teal"]), ("What is the hard limit?", ["42"]),
            ("Which column holds the labels?", ["names"]), ("Which release is described?", ["10.7"])]
    qs = [] if first is None else [first]
    i = len(qs)
    while len(qs) < total - unanswerable:
        question, kws = good[i % len(good)]
        qs.append(_answerable(f"toy-{split}-{len(qs) + 1:03d}", question, kws))
        i += 1
    while len(qs) < total:
        qs.append(_unanswerable(f"toy-{split}-{len(qs) + 1:03d}"))
    return qs


def _make_corpus(root: Path, dev: list[dict], test: list[dict]) -> Path:
    corpus = root / "toy"
    (corpus / "docs").mkdir(parents=True)
    (corpus / "questions").mkdir()
    (corpus / "docs" / "doc.txt").write_text(DOC, encoding="utf-8")
    (corpus / "README.md").write_text("# toy\n", encoding="utf-8")
    for name, qs in (("dev", dev), ("test", test)):
        lines = "".join(json.dumps(q) + "\n" for q in qs)
        (corpus / "questions" / f"{name}.jsonl").write_text(lines, encoding="utf-8")
    return corpus


def _errors(corpus: Path) -> list[str]:
    errors: list[str] = []
    verify.check_corpus(corpus, errors)
    return errors


def test_bundled_corpora_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert verify.main([]) == 0, capsys.readouterr().err


def test_toy_corpus_passes(tmp_path: Path) -> None:
    assert _errors(_make_corpus(tmp_path, _split("dev"), _split("test"))) == []


@pytest.mark.parametrize(("keyword", "inside"), [("0.7", "10.7"), ("NA", "names"), ("tea", "teal")])
def test_keyword_only_inside_a_longer_word_fails(tmp_path: Path, keyword: str, inside: str) -> None:
    assert verify.norm(inside) in verify.norm(DOC)  # a plain substring match would have accepted it
    bad = _answerable("toy-dev-001", "What does the document mention?", [keyword])
    errors = _errors(_make_corpus(tmp_path, _split("dev", bad), _split("test")))
    assert errors == [
        f"toy/dev/toy-dev-001: keyword {keyword!r} not found (as a whole word) in any of [{{'source': 'doc.txt'}}]",
        "toy/dev/toy-dev-001: source {'source': 'doc.txt'} contains none of the keywords " + repr([keyword]),
    ]


def test_keyword_at_word_boundaries_passes(tmp_path: Path) -> None:
    ok = _answerable("toy-dev-001", "What does the document mention?", ["10.7", "Teal", "hard  limit"])
    assert _errors(_make_corpus(tmp_path, _split("dev", ok), _split("test"))) == []


def test_keyword_in_question_fails(tmp_path: Path) -> None:
    bad = _answerable("toy-test-001", "Is the widget TEAL or red?", ["teal"])
    errors = _errors(_make_corpus(tmp_path, _split("dev"), _split("test", bad)))
    assert errors == ["toy/test/toy-test-001: keyword 'teal' occurs in the question itself"]


def test_keyword_inside_a_longer_question_word_is_allowed(tmp_path: Path) -> None:
    ok = _answerable("toy-test-001", "What is the widget's teal-ish colour called? (not teals)", ["tea"])
    errors = _errors(_make_corpus(tmp_path, _split("dev"), _split("test", ok)))
    # "tea" is not a whole word of the question; it fails only because the document lacks it as a word
    assert not any("occurs in the question" in e for e in errors)


@pytest.mark.parametrize(("unanswerable", "total", "share"), [(0, 4, "0%"), (2, 4, "50%"), (4, 10, "40%")])
def test_unanswerable_share_outside_bounds_fails(tmp_path: Path, unanswerable: int, total: int, share: str) -> None:
    dev = _split("dev", unanswerable=unanswerable, total=total)
    errors = _errors(_make_corpus(tmp_path, dev, _split("test")))
    assert errors == [f"toy/dev: unanswerable share {share} outside 10%-35%"]


@pytest.mark.parametrize(("unanswerable", "total"), [(1, 10), (1, 3), (7, 20)])
def test_unanswerable_share_inside_bounds_passes(tmp_path: Path, unanswerable: int, total: int) -> None:
    dev = _split("dev", unanswerable=unanswerable, total=total)
    assert _errors(_make_corpus(tmp_path, dev, _split("test"))) == []


def test_extra_keys_are_allowed_but_known_keys_required(tmp_path: Path) -> None:
    extra = _answerable("toy-dev-001", "What colour is the widget?", ["teal"],
                        evidence="painted teal", question_type="colour")
    assert _errors(_make_corpus(tmp_path / "a", _split("dev", extra), _split("test"))) == []

    missing = _answerable("toy-dev-001", "What colour is the widget?", ["teal"])
    del missing["type"]
    errors = _errors(_make_corpus(tmp_path / "b", _split("dev", missing), _split("test")))
    assert errors == ["toy/dev/toy-dev-001: missing keys ['type']"]


def test_keyword_rules_for_answerable_and_unanswerable(tmp_path: Path) -> None:
    no_keywords = _answerable("toy-dev-001", "What colour is the widget?", [])
    with_keywords = {**_unanswerable("toy-test-004"), "answer_keywords": ["teal"]}
    test = [*_split("test", total=3, unanswerable=0), with_keywords]
    errors = _errors(_make_corpus(tmp_path, _split("dev", no_keywords), test))
    assert errors == ["toy/dev/toy-dev-001: need 1-3 non-empty answer keywords, got []",
                      "toy/test/toy-test-004: unanswerable question must have no keywords/sources"]


def _first_lecture_question() -> dict:
    """The first lecture dev question: a real question of the corpora."""
    return json.loads((VERIFY_PY.parent / "lecture" / "questions" / "dev.jsonl").read_text().splitlines()[0])


def _file_errors(check, tmp_path: Path, name: str, items: list[dict]) -> list[str]:  # noqa: ANN001 - a verify.check_*
    """What `check` reports for a folder holding one file `name` of `items`."""
    (tmp_path / name).write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    errors: list[str] = []
    check(tmp_path, errors)
    return errors


def _shipped_item(**change: object) -> dict:
    """A labelled shipped answer to the first lecture dev question."""
    q = _first_lecture_question()
    item = {"id": q["id"], "question": q["question"], "answerable": q["answerable"], "contexts": ["Block one."],
            "answer": "Yes [1].", "sentences": [{"text": "Yes.", "cited": [1], "label": "supported", "note": ""}],
            "answer_label": "correct"}
    return {**item, **change}


def _shipped_errors(tmp_path: Path, name: str, items: list[dict]) -> list[str]:
    return _file_errors(verify.check_shipped, tmp_path, name, items)


def test_shipped_labels_pass_when_well_formed(tmp_path: Path) -> None:
    assert _shipped_errors(tmp_path, "dev-2026-12-01.jsonl", [_shipped_item()]) == []


@pytest.mark.parametrize(("name", "change", "expected"), [
    ("test-x.jsonl", {}, "is not a test question"),  # a dev question in a test file
    ("dev-x.jsonl", {"question": "Something else?"}, "question or answerable differs"),
    ("dev-x.jsonl", {"answer_label": "fine"}, "answer_label 'fine'"),
    ("dev-x.jsonl", {"sentences": [{"text": "Yes.", "cited": [2], "label": "supported"}]}, "cites [2] of 1"),
    ("dev-x.jsonl", {"sentences": [{"text": "Yes.", "cited": [1], "label": ""}]}, "sentence label ''"),
    ("later-x.jsonl", {}, "must start with a split"),
])
def test_shipped_labels_fail_on_each_defect(tmp_path: Path, name: str, change: dict, expected: str) -> None:
    errors = _shipped_errors(tmp_path, name, [_shipped_item(**change)])
    assert any(expected in e for e in errors), errors


def _pair(**change: object) -> dict:
    """A labelled (sentence, cited block) pair of an answer to the first lecture dev question."""
    q = _first_lecture_question()
    item = {"id": q["id"], "question": q["question"], "answerable": q["answerable"], "sentence": "Yes.", "cited": [2],
            "cited_blocks": ["Block two."], "label": "unsupported", "note": "not in block", "kind": "as drafted",
            "shown": False}
    return {**item, **change}


def _pair_errors(tmp_path: Path, name: str, items: list[dict]) -> list[str]:
    return _file_errors(verify.check_pairs, tmp_path, name, items)


def test_labelled_pairs_pass_when_well_formed(tmp_path: Path) -> None:
    assert _pair_errors(tmp_path, "dev-x.jsonl", [_pair(), _pair(cited=[], cited_blocks=["A.", "B."])]) == []


@pytest.mark.parametrize(("name", "change", "expected"), [
    ("test-x.jsonl", {}, "is not a test question"),
    ("dev-x.jsonl", {"question": "Something else?"}, "question or answerable differs"),
    ("dev-x.jsonl", {"label": ""}, "label ''"),
    ("dev-x.jsonl", {"cited": [1, 2]}, "does not match its 1 cited block"),
    ("dev-x.jsonl", {"cited_blocks": []}, "cited_blocks must be non-empty"),
    ("dev-x.jsonl", {"kind": "dropped"}, "kind 'dropped'"),
    ("dev-x.jsonl", {"sentence": " "}, "empty sentence"),
    ("later-x.jsonl", {}, "must start with a split"),
])
def test_labelled_pairs_fail_on_each_defect(tmp_path: Path, name: str, change: dict, expected: str) -> None:
    errors = _pair_errors(tmp_path, name, [_pair(**change)])
    assert any(expected in e for e in errors), errors
