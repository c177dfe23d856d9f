"""Choosing thresholds on dev data: the end-to-end answerability gate, and refusing test data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.tuning import GateRow, choose_answerability, choose_gate, gate_rows, main


def _row(i: int, answerable: bool, p: float | None, refused: bool = False, correct: bool = False) -> GateRow:
    return GateRow(f"x-dev-{i:03d}", answerable, p, refused, correct)


def test_gate_counts_what_the_answer_path_made_of_each_question() -> None:
    rows = [
        _row(1, True, 0.40, correct=True),   # right, low P: a gate at 0.45 would lose it
        _row(2, True, 0.42, correct=True),
        _row(3, False, 0.41, refused=True),  # refused by the checks anyway
        _row(4, False, 0.43),                # answered although unanswerable: wrong
        _row(5, False, 0.30),
        _row(6, True, 0.60, correct=True),
        _row(7, True, 0.70),                 # shown without its keywords: wrong
        _row(8, True, None, refused=True),   # refused by the evidence floor: refused at every threshold
    ]
    result = choose_gate(rows, floor=0.0, min_unanswerable_refused=0.6)
    by_t = {c["threshold"]: c for c in result["curve"]}
    assert by_t[0.30] == {"threshold": 0.30, "utility": 0, "right": 3, "wrong": 3,
                          "unanswerable_refused": round(1 / 3, 4), "answerable_refused": 0.2}
    assert by_t[0.40] == {"threshold": 0.40, "utility": 3 - 2, "right": 3, "wrong": 2,
                          "unanswerable_refused": round(2 / 3, 4), "answerable_refused": 0.2}
    assert by_t[0.43]["utility"] == 1 - 2
    assert by_t[0.44] == {"threshold": 0.44, "utility": 0, "right": 1, "wrong": 1, "unanswerable_refused": 1.0,
                          "answerable_refused": 0.6}
    # The best utility among thresholds refusing >= 60 % of unanswerable questions is 1, at 0.31..0.40: the middle.
    assert result["chosen"]["threshold"] == 0.36
    strict = choose_gate(rows, min_unanswerable_refused=1.0)["chosen"]  # utility 0 at best: 0.44..0.60 and 0.71..1
    assert strict["utility"] == 0 and strict["unanswerable_refused"] == 1.0
    assert result["answerable"] == 5 and result["unanswerable"] == 3


def test_gate_requires_the_unanswerable_share_and_knows_only_thresholds_above_the_runs() -> None:
    rows = [_row(1, True, 0.2, correct=True), _row(4, True, 0.3, correct=True), _row(2, False, 0.5),
            _row(3, False, 0.9, refused=True)]
    strict = choose_gate(rows, floor=0.0, min_unanswerable_refused=1.0)
    assert strict["chosen"]["threshold"] > 0.5 and strict["chosen"]["utility"] == 0  # refusing row 2 loses 1 and 4
    assert strict["chosen"]["unanswerable_refused"] == 1.0
    lax = choose_gate(rows, floor=0.0, min_unanswerable_refused=0.5)
    assert lax["chosen"]["threshold"] == 0.1 and lax["chosen"]["utility"] == 2 - 1  # 0.0..0.2: the middle
    assert min(c["threshold"] for c in choose_gate(rows, floor=0.45)["curve"]) == 0.45


def _run(folder: Path, min_answerability: float, results: list[dict]) -> Path:
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"settings": {"answer": {"min_answerability": min_answerability}}}))
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return folder


def _result(qid: str, answerable: bool, p: float, source: str = "answerability", refused: bool = False,
            keywords_ok: bool | None = True, error: str = "") -> dict:
    return {"id": qid, "answerable": answerable, "answerability": p, "answerability_source": source,
            "refused": refused, "error": error, "scores": {"keywords_ok": keywords_ok}}


def test_gate_rows_read_runs_and_count_failures_as_refusals(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", 0.0, [_result("c-dev-001", True, 0.5),
                                   _result("c-dev-002", True, 0.12, source="best_dense", refused=True),
                                   _result("c-dev-003", True, 0.7, error="timeout", keywords_ok=None)])
    b = _run(tmp_path / "b", 0.3, [_result("d-dev-001", False, 0.6, refused=True)])
    rows, floor = gate_rows([a, b])
    assert floor == 0.3
    assert rows == [GateRow("c-dev-001", True, 0.5, False, True), GateRow("c-dev-002", True, None, True, False),
                    GateRow("c-dev-003", True, 0.7, True, False), GateRow("d-dev-001", False, 0.6, True, False)]


def test_gate_refuses_test_runs(tmp_path: Path) -> None:
    run = _run(tmp_path / "dev-looking", 0.0, [_result("c-test-001", True, 0.5)])
    with pytest.raises(SystemExit, match="test question"):
        gate_rows([run])
    with pytest.raises(SystemExit, match="dev data only"):
        main(["gate", "--runs", str(tmp_path / "runs-test"), "--out", str(tmp_path / "o")])


def test_gate_cli_writes_the_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path / "r", 0.0, [_result("c-dev-001", True, 0.5), _result("c-dev-002", False, 0.3)])
    assert main(["gate", "--runs", str(run), "--out", str(tmp_path / "o")]) == 0
    chosen = json.loads(capsys.readouterr().out)
    assert chosen["threshold"] == 0.41 and chosen["utility"] == 1  # 0.31..0.50 refuse the unanswerable one only
    saved = json.loads((tmp_path / "o" / "gate.json").read_text())
    assert saved["chosen"] == chosen and saved["run_threshold"] == 0.0
    assert saved["rows"] == [{"id": "c-dev-001", "answerable": True, "p": 0.5, "refused": False, "correct": True},
                             {"id": "c-dev-002", "answerable": False, "p": 0.3, "refused": False, "correct": False}]


def test_answerability_threshold_keeps_false_refusal_under_its_cap() -> None:
    rows = [{"answerable": True, "p": p} for p in (0.3, 0.6, 0.7, 0.8)] + \
           [{"answerable": False, "p": p} for p in (0.2, 0.35, 0.65)]
    result = choose_answerability(rows, max_false_refusal=0.25)
    # 0.40..0.60 refuse 2 of 3 unanswerable and 1 of 4 answerable (the cap); ties go to the lower threshold.
    assert result["chosen"] == {"threshold": 0.4, "unanswerable_refused": round(2 / 3, 4), "answerable_refused": 0.25}
