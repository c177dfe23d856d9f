"""`rag verify`: the labelled-answer format, the baselines, detection scoring, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labelled_items import EXPECTED, ITEMS, POMPEII, SQLITE, write_items

from eval.baselines import flag_everything, not_verbatim, ten_line_rule
from eval.checking import checker_detector, sentence_verdicts
from eval.detection import PRF, DetectionReport, score_detector, score_detectors
from eval.errors import LabelledSetError
from eval.labelled import load_items
from rag.verify import ClaimChecker


def test_baselines_by_hand() -> None:
    assert flag_everything("Anything.", [])
    assert not not_verbatim("the PRAGMA  foreign_keys setting is OFF", [SQLITE])
    assert not_verbatim("By default, the PRAGMA foreign_keys setting is off.", [SQLITE])
    assert ten_line_rule("Mount Etna is roughly 3357 metres tall.", [POMPEII])  # a number not in the passage
    assert ten_line_rule("Etna is about 3,357 metres high in Italy.", [POMPEII])  # a name not in the passage
    assert ten_line_rule("A VACUUM can be run inside a transaction.", [SQLITE])  # negation mismatch
    assert ten_line_rule("A VACUUM cannot be started here.", ["A VACUUM can be started here."])  # the reverse
    assert ten_line_rule("Etna erupts with lava bombs.", [POMPEII])  # 2 of 5 content words
    assert not ten_line_rule("Etna destroyed Pompeii.", [POMPEII])  # every word is there: a miss
    assert not ten_line_rule("The PRAGMA foreign_keys setting is off by default.", [SQLITE])


def test_load_items_keeps_extra_keys_and_selects_a_split(tmp_path: Path) -> None:
    path = write_items(tmp_path / "items.jsonl")
    items = load_items(path)
    assert [i.id for i in items] == [d["id"] for d in ITEMS]
    assert items[0].extra == {"backend": "local", "split": "dev"} and items[0].answer_label == "partial"
    assert items[0].sentences[1].unsupported and items[0].sentences[1].cited == (1,)
    assert items[5].contexts_of(items[5].sentences[0]) == items[5].contexts  # cites none: every context
    assert [i.id for i in load_items(path, "dev")] == ["i1", "i2", "i3"]
    assert items[0].sources == () and items[0].sources_of(items[0].sentences[1]) == ()


def test_source_labels_reach_the_judge(tmp_path: Path) -> None:
    """An item's optional `sources` (each context's label, as the answer's prompt showed it) are what the judge
    sees; an item without them shows "passage-N"."""
    labelled = {**ITEMS[0], "sources": ["sqlite/pragma.html, section: foreign_keys", "pompeii.txt"]}
    path = write_items(tmp_path / "items.jsonl", [labelled, ITEMS[1]])
    first, second = load_items(path)
    assert "sources" not in first.extra and first.sources_of(first.sentences[1]) == (labelled["sources"][0],)
    seen: list[str] = []

    class Judge:
        def p_yes(self, prompt) -> float:
            seen.append(prompt.messages[-1].content)
            return 0.9

    detect = checker_detector(ClaimChecker(judge=Judge()))
    detect(first)
    assert seen and all('source="sqlite/pragma.html, section: foreign_keys"' in q or 'source="pompeii.txt"' in q
                        for q in seen)
    seen.clear()
    detect(second)
    assert seen and all('source="passage-' in q for q in seen)


BAD = [
    ("{oops", "invalid JSON"),
    ({k: v for k, v in ITEMS[0].items() if k != "contexts"}, "missing key(s) contexts"),
    ({**ITEMS[0], "sentences": [{"text": "A.", "cited": [3], "label": "supported"}]}, "cites [3] but there are 2"),
    ({**ITEMS[0], "sentences": [{"text": "A.", "cited": [1], "label": "maybe"}]},
     "sentence label 'maybe' is not one of: supported, unsupported"),
    ({**ITEMS[0], "answer_label": "great"}, "answer_label 'great' is not one of: correct, partial, wrong, refused"),
    ({**ITEMS[0], "id": "i2"}, "duplicate id 'i2' (first on line 1)"),
    ({**ITEMS[0], "sources": ["a.txt"]}, "'sources' has 1 label(s) for 2 context(s)"),
    ({**ITEMS[0], "sources": ["a.txt", 3]}, "'sources' must be a list of non-empty strings"),
]


@pytest.mark.parametrize(("line", "message"), BAD)
def test_bad_items_name_file_and_line(tmp_path: Path, line: object, message: str) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(ITEMS[1]) + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(LabelledSetError) as e:
        load_items(path)
    assert f"{path}:2: " in str(e.value) and message in str(e.value)


def test_split_needs_a_split_key(tmp_path: Path) -> None:
    path = write_items(tmp_path / "items.jsonl", [ITEMS[0], {k: v for k, v in ITEMS[1].items() if k != "split"}])
    with pytest.raises(LabelledSetError, match=r"items.jsonl:2: no 'split' key; --split dev needs one"):
        load_items(path, "dev")


def test_baseline_figures_and_json_round_trip(tmp_path: Path) -> None:
    report = score_detectors(load_items(write_items(tmp_path / "items.jsonl")), {})
    d = report.to_dict()
    assert (d["items"], d["sentences"], d["unsupported_sentences"], d["unsupported_answers"]) == (7, 10, 4, 4)
    for name, expected in EXPECTED.items():
        for level in ("sentence", "answer"):
            assert d["detectors"][name][level] == expected[level], (name, level)
    assert DetectionReport.from_dict(json.loads(json.dumps(d))) == report


def test_failed_checks_count_against_the_detector(tmp_path: Path) -> None:
    items = load_items(write_items(tmp_path / "items.jsonl"))

    def broken(item):
        if item.id in ("i1", "i7"):
            raise RuntimeError("judge down")
        return [s.unsupported for s in item.sentences]  # otherwise perfect

    s = score_detector(items, broken)
    # i1: its supported sentence a false alarm, its unsupported one a miss; i7: a false alarm. Answers likewise.
    assert s.failures == 2
    assert s.sentence == PRF(tp=3, fp=2, fn=1, tn=4)
    assert s.answer == PRF(tp=3, fp=1, fn=1, tn=2)
    short = score_detector(items, lambda item: [True])  # a verdict count that does not match fails the item
    assert short.failures == sum(len(i.sentences) != 1 for i in items)


def test_the_checker_adapter_gives_a_verdict_per_sentence(tmp_path: Path) -> None:
    checker = ClaimChecker()  # no embedder: lexical similarity; the configured checker is used end to end below
    ok = sentence_verdicts(checker, "What are the defaults?", [SQLITE],
                           [("The PRAGMA foreign_keys setting is off by default.", (1,)),
                            ("The default page size is 65536 bytes.", ())])
    assert ok == [True, False]
    items = load_items(write_items(tmp_path / "items.jsonl"))
    s = score_detector(items, checker_detector(checker))
    assert s.failures == 0 and sum(vars(s.sentence).values()) == 10


def _verify(rag_cli, *args):
    return rag_cli.run(["verify", *map(str, args)], timeout=600)


def test_rag_verify_baselines_end_to_end(tmp_path: Path, rag_cli) -> None:
    path = write_items(tmp_path / "items.jsonl")
    done = _verify(rag_cli, path, "--json", "--checker", "none")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out["detectors"]) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        assert {k: out["detectors"][name][k] for k in ("sentence", "answer")} == expected
    text = _verify(rag_cli, path, "--checker", "none", "--split", "test")
    assert text.returncode == 0, text.stderr
    assert "4 answers (1 with an unsupported sentence), 4 sentences (1 unsupported), split test" in text.stdout
    lines = text.stdout.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("dropping the flagged"))
    rows = {line[:26].strip(): line[26:].split() for line in lines[3:end]}
    after = {line[:26].strip(): line[26:] for line in lines[end + 1:]}
    assert after["flag-everything"].split()[3].startswith("0/0")  # everything dropped: nothing left to hallucinate
    assert rows["ten-line rule"] == ["0.000", "0.000", "0.000", "1.000", "1.000", "1.000", "0"]  # i4's miss and FP
    assert rows["flag-everything"] == ["0.250", "1.000", "0.400", "0.333", "1.000", "0.500", "0"]


def test_rag_verify_refuses_a_bad_file(tmp_path: Path, rag_cli) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(ITEMS[0]) + "\n" + json.dumps({**ITEMS[1], "sentences": "none"}) + "\n")
    done = _verify(rag_cli, path, "--checker", "none")
    assert done.returncode == 1
    assert f"{path}:2: 'sentences' must be a list" in done.stderr
    missing = _verify(rag_cli, tmp_path / "nope.jsonl", "--json")
    assert missing.returncode == 1 and "labelled set not found" in json.loads(missing.stdout)["error"]["message"]


@pytest.mark.slow
def test_rag_verify_with_the_configured_checker(tmp_path: Path, rag_cli) -> None:
    """The checker as the answer path builds it; --llm extractive keeps it quick (no LLM judge to load)."""
    done = _verify(rag_cli, write_items(tmp_path / "items.jsonl"), "--json", "--llm", "extractive")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert list(out["detectors"])[0] == "checker" and "rag.factory.build_checker" in out["checker"]
    checker = out["detectors"]["checker"]
    assert checker["failures"] == 0
    assert sum(checker["sentence"][k] for k in ("tp", "fp", "fn", "tn")) == 10
    assert sum(checker["answer"][k] for k in ("tp", "fp", "fn", "tn")) == 7
    for name, expected in EXPECTED.items():  # the baselines are computed on the same items
        assert {k: out["detectors"][name][k] for k in ("sentence", "answer")} == expected


def test_filtering_counts_what_the_user_would_see_by_the_human_labels() -> None:
    """Dropping flagged sentences: an answer with nothing left is refused; one keeping an unsupported sentence, or
    answering an unanswerable question, is still hallucinated. Refusal sentences are not scored."""
    from eval.detection import Filtering
    from eval.labelled import parse_item

    def item(labels: list[str], answerable: bool = True, answer_label: str = "partial") -> object:
        return parse_item({"id": "x", "question": "q", "contexts": ["c"], "answer": "a", "answerable": answerable,
                           "answer_label": answer_label,
                           "sentences": [{"text": f"s{i}", "cited": [1], "label": lab} for i, lab in enumerate(labels)]},
                          "test")

    mixed = item(["supported", "unsupported", "refusal"])
    assert len(mixed.sentences) == 2 and mixed.refusal_sentences == 1
    f = Filtering().add(mixed, [False, True])  # the unsupported one is caught: the answer is clean
    f = f.add(item(["supported", "unsupported"]), [False, False])  # missed: still hallucinated
    f = f.add(item(["supported"], answerable=False), [False])  # an answer to an unanswerable question
    f = f.add(item(["supported"], answer_label="correct"), [True])  # a false alarm turns a correct answer away
    assert (f.given_before, f.hallucinated_before, f.given_after, f.hallucinated_after, f.correct_lost) == (4, 3, 3, 2, 1)
    assert f.to_dict()["rate_before"] == 0.75 and f.to_dict()["rate_after"] == round(2 / 3, 6)
