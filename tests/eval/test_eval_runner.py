"""The runner: resumable results.jsonl, run identity, compare, fine-tuning export; the CLI survives a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from eval_fixtures import make_question, make_result, verdict, write_questions
from labelled_items import EXPECTED, write_items

from eval.compare import Comparison, compare
from eval.errors import RunError
from eval.finetune import export_finetune
from eval.questions import load_questions
from eval.report import write_reports
from eval.runner import (
    RESULTS,
    RunSettings,
    evaluate_question,
    load_results,
    open_run,
    repair_tail,
    result_line,
    run_questions,
    summarize,
)
from ingest.records import Chunk
from rag.records import Answer, Evidence, Hit, Usage
from rag.verify import ClaimChecker

SETTINGS = RunSettings(questions="q.jsonl", questions_sha256="1" * 64, index="/idx", llm="fake", model="fake-1")


class FakePipeline:
    """Answers every question with its first document sentence; fails on the questions told to."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.fail = set(fail)
        self.asked: list[str] = []
        chunk = Chunk(chunk_id="c1", source="volcanoes.txt", text="Etna is about 3,357 metres high.", start=0,
                      end=32, text_hash="h", doc_hash="d")
        self.hits = [Hit(chunk, 1.0)]

    def retrieve(self, question: str, k: int = 10) -> list[Hit]:
        return self.hits

    def ask(self, question: str, llm: object = None) -> Answer:
        self.asked.append(question)
        if question in self.fail:
            raise RuntimeError("backend down")
        return Answer(text="Etna is about 3,357 metres high [1].", refused=False, contexts=tuple(self.hits),
                      model="fake-1", usage=Usage(3, 4), timings={"total": 0.01},
                      evidence=Evidence(best_dense=0.61, keyword_overlap=1.0, agreement=True))


class BrokenChecker:
    def check_answer(self, question: str, answer: str, contexts: list[str], labels: list[str] | None = None) -> list:
        raise RuntimeError("judge down")


def test_partial_last_line_is_dropped_and_redone(tmp_path: Path) -> None:
    qs = load_questions(write_questions(tmp_path / "q.jsonl", 4))
    out = tmp_path / "run"
    run_questions(FakePipeline(), qs[:2], out, SETTINGS, checker=ClaimChecker())
    path = out / RESULTS
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "q-003", "question": "trunc')  # a write cut short by a kill
    assert set(load_results(path)) == {"q-001", "q-002"}
    pipeline = FakePipeline()
    results = run_questions(pipeline, qs, out, SETTINGS, checker=ClaimChecker())
    assert [r.id for r in results] == ["q-001", "q-002", "q-003", "q-004"]
    assert len(pipeline.asked) == 2  # only the two not done
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["q-001", "q-002", "q-003", "q-004"]
    assert results[0].verdicts and all(v.supported for v in results[0].verdicts)


def test_failed_questions_are_recorded_and_retried(tmp_path: Path) -> None:
    qs = load_questions(write_questions(tmp_path / "q.jsonl", 3))
    out = tmp_path / "run"
    first = run_questions(FakePipeline(fail={qs[1].question}), qs, out, SETTINGS)
    assert first[1].error == "RuntimeError: backend down" and not first[0].error
    assert summarize(first, SETTINGS, {}).counts.errors == 1
    pipeline = FakePipeline()
    second = run_questions(pipeline, qs, out, SETTINGS)
    assert pipeline.asked == [qs[1].question] and not second[1].error
    assert set(load_results(out / RESULTS)) == {q.id for q in qs}


def test_extra_keys_answerability_and_failed_checks_reach_results_jsonl(tmp_path: Path) -> None:
    line = {"id": "x-1", "question": "How high is Etna?", "reference_answer": "3,357 metres.",
            "answer_keywords": ["3,357"], "reference_sources": [{"source": "volcanoes.txt"}], "answerable": True,
            "question_type": "numeric-lookup", "evidence": "Etna is about 3,357 metres high."}
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps(line) + "\n")
    qs = load_questions(qfile)
    out = tmp_path / "run"
    [result] = run_questions(FakePipeline(), qs, out, SETTINGS, checker=ClaimChecker())
    [written] = [json.loads(x) for x in (out / RESULTS).read_text().splitlines()]
    assert written["extra"] == {"question_type": "numeric-lookup", "evidence": "Etna is about 3,357 metres high."}
    assert written["type"] == "" and written["scores"]["keywords_ok"] is True
    assert (written["answerability"], written["answerability_source"]) == (0.61, "best_dense")
    assert replace(load_results(out / RESULTS)["x-1"], timings={}) == replace(result, timings={})  # timings rounded
    broken = evaluate_question(FakePipeline(), qs[0], BrokenChecker())
    assert broken.check_error == "RuntimeError: judge down" and not broken.verdicts and not broken.error
    m = summarize([broken], SETTINGS, {})
    assert m.counts.check_errors == 1 and m.counts.unchecked_answers == 1 and m.hallucination.rate == 1.0


def test_a_run_directory_keeps_its_identity(tmp_path: Path) -> None:
    open_run(tmp_path, SETTINGS)
    open_run(tmp_path, RunSettings(**{**SETTINGS.to_dict(), "settings": {"limit": 3}}))  # limits may change
    other = RunSettings(**{**SETTINGS.to_dict(), "model": "other-model"})
    with pytest.raises(RunError, match="other model"):
        open_run(tmp_path, other)


def test_repair_tail_keeps_complete_files(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text('{"a": 1}\n')
    repair_tail(p)
    assert p.read_text() == '{"a": 1}\n'
    p.write_text('{"a": 1}\n{"b"')
    repair_tail(p)
    assert p.read_text() == '{"a": 1}\n'


def _write_run(directory: Path, results: list) -> Path:
    directory.mkdir(parents=True)
    with open(directory / RESULTS, "w", encoding="utf-8") as fh:
        for r in results:
            fh.write(json.dumps(result_line(r)) + "\n")
    write_reports(directory, summarize(results, SETTINGS, {}), results)
    return directory


def test_compare_gives_deltas_and_changed_questions(tmp_path: Path) -> None:
    q1, q2 = make_question("a"), make_question("b")
    run_a = _write_run(tmp_path / "a", [make_result(q1, verdicts=(verdict(True),)),
                                        make_result(q2, refused=True)])
    run_b = _write_run(tmp_path / "b", [make_result(q1, verdicts=(verdict(True),)),
                                        make_result(q2, verdicts=(verdict(True),))])
    diff = compare(run_a, run_b)
    assert diff.metrics["answer.keyword_accuracy"].to_dict() == {"a": 0.5, "b": 1.0, "delta": 0.5}
    assert diff.metrics["refusal.false_refusal_rate"].delta == -0.5
    assert [c.id for c in diff.changed] == ["b"]
    assert diff.changed[0].changes["answered"] == (False, True)
    assert Comparison.from_dict(json.loads(json.dumps(diff.to_dict()))) == diff
    with pytest.raises(RunError, match="no metrics.json"):
        compare(run_a, tmp_path / "missing")


def test_export_finetune_keeps_correct_faithful_answers(tmp_path: Path) -> None:
    results = [
        make_result(make_question("good"), verdicts=(verdict(True),)),
        make_result(make_question("wrong", keywords=("1999",)), verdicts=(verdict(True),)),
        make_result(make_question("unfaithful"), verdicts=(verdict(True), verdict(False))),
        make_result(make_question("refused"), refused=True),
        make_result(make_question("unanswerable", answerable=False), verdicts=(verdict(True),)),
    ]
    run = _write_run(tmp_path / "run", results)
    n = export_finetune(run, tmp_path / "ft" / "pairs.jsonl")
    lines = (tmp_path / "ft" / "pairs.jsonl").read_text().splitlines()
    assert n == len(lines) == 1
    messages = json.loads(lines[0])["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert "Question good?" in messages[1]["content"] and "GANs appeared in 2014." in messages[1]["content"]
    assert messages[2]["content"] == "GANs appeared in 2014 [1]."


@pytest.mark.slow
def test_cli_resumes_after_sigkill_without_duplicates(tmp_path: Path, tiny_index: Path, rag_cli) -> None:
    qfile = write_questions(tmp_path / "questions.jsonl", 60)
    out = tmp_path / "run"
    args = ["eval", qfile, "--index", tiny_index, "--out", out, "--llm", "extractive", "--json"]
    proc = rag_cli.popen(args)
    results = out / RESULTS
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    written = [line for line in results.read_text().split("\n") if line.strip()]
    assert 5 <= len(written) < 60
    items = write_items(tmp_path / "items.jsonl")
    done = rag_cli.run([*args, "--labelled", items], timeout=300)  # the labelled set is scored at the end
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in results.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == {f"q-{i:03d}" for i in range(1, 61)}
    metrics = json.loads(done.stdout)
    assert metrics["counts"]["questions"] == 60 and metrics["counts"]["errors"] == 0
    assert metrics["retrieval"]["applicable"] and metrics["retrieval"]["hit@10"] == 1.0
    assert metrics["refusal"]["curve"]["score"] in ("answerability", "best_dense")
    assert (out / "report.html").exists() and (out / "metrics.json").exists()
    labelled = metrics["labelled_detector"]
    assert list(labelled["detectors"])[0] == "checker" and labelled["items"] == 7
    assert labelled["detectors"]["ten-line rule"]["sentence"] == EXPECTED["ten-line rule"]["sentence"]
    assert "Claim detection on labelled answers" in (out / "report.md").read_text()



@pytest.mark.slow
def test_rewrite_reports_rechecks_claims(tmp_path: Path, embedder) -> None:
    from eval.api import rewrite_reports

    stale = make_result(make_question("a"), verdicts=(verdict(False, "GANs appeared in 2014."),))
    run = _write_run(tmp_path / "run", [stale])
    (run / "run.json").write_text(json.dumps(SETTINGS.to_dict()))
    assert json.loads((run / "metrics.json").read_text())["answer"]["faithfulness"] == 0.0
    summary = rewrite_reports(run, recheck=True, embedder=embedder)
    assert summary.metrics.answer.faithfulness == 1.0
    [line] = (run / RESULTS).read_text().splitlines()
    assert json.loads(line)["verdicts"][0]["supported"] is True


class TablePipeline(FakePipeline):
    """Answers from a tab-separated table: the model is shown its rows naming their columns (rag.prompt)."""

    def __init__(self) -> None:
        super().__init__()
        from rag.prompt import select_blocks

        text = "A Brief History\nYear\tModel\tKey Innovation\n2014\tGANs\tGenerator game\n2024\tFlux\tbetter quality"
        chunk = Chunk(chunk_id="t1", source="lecture.txt", text=text, start=0, end=len(text), text_hash="h",
                      doc_hash="d", section="History")
        self.hits = [Hit(chunk, 1.0)]
        self.blocks = select_blocks(self.hits, 1000, 5, lambda s: len(s.split()))

    def ask(self, question: str, llm: object = None) -> Answer:
        return Answer(text="GANs appeared in 2014 [1].", refused=False, contexts=tuple(self.hits), model="fake-1",
                      shown_contexts=tuple(b.text for b in self.blocks))


class RecordingChecker:
    def __init__(self) -> None:
        self.contexts: list[list[str]] = []
        self.labels: list[list[str] | None] = []

    def check_answer(self, question: str, answer: str, contexts: list[str], labels: list[str] | None = None) -> list:
        self.contexts.append(list(contexts))
        self.labels.append(labels)
        return [verdict(True, answer)]


def test_a_run_checks_and_records_each_block_as_the_model_was_shown_it(tmp_path: Path) -> None:
    [q] = load_questions(write_questions(tmp_path / "q.jsonl", 1))
    pipeline, checker = TablePipeline(), RecordingChecker()
    shown = pipeline.blocks[0].text
    assert shown != pipeline.hits[0].chunk.text and "Year: 2014" in shown  # the rows name their columns
    [result] = run_questions(pipeline, [q], tmp_path / "run", SETTINGS, checker=checker)
    assert checker.contexts == [[shown]]
    assert checker.labels == [["lecture.txt, section: History"]]  # the judge sees each block's source label too
    assert [c.text for c in result.contexts] == [shown]
    [written] = [json.loads(x) for x in (tmp_path / "run" / RESULTS).read_text().splitlines()]
    assert written["contexts"][0]["text"] == shown
    # an answer built without blocks (another backend) is recorded with its chunks' text
    plain = evaluate_question(FakePipeline(), q, RecordingChecker())
    assert [c.text for c in plain.contexts] == ["Etna is about 3,357 metres high."]
