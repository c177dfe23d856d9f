"""Labelled answers: the public format `rag verify` scores claim detectors on.

One JSON object a line:

    {"id": "local:qwen2.5-1.5b:lecture-dev-001",            unique
     "question": "...",
     "contexts": ["text of block 1", "text of block 2"],    [n] in the answer cites contexts[n-1]
     "answer": "the answer as the model wrote it, with [n] markers",
     "sentences": [{"text": "a claim without markers", "cited": [1], "label": "supported" | "unsupported",
                    "note": "..."}],
     "answer_label": "correct" | "partial" | "wrong" | "refused",   optional
     "sources": ["genai-lecture.txt", "manual.pdf, page 4"],   optional: each context's source label, as the
                                                            answer's prompt showed it (the claim judge sees it too)
     ...}                                                   any other key is kept in `extra` and ignored

`split` (one of those other keys) is what `rag verify --split` selects on. eval/README.md documents the format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.errors import LabelledSetError

SENTENCE_LABELS = ("supported", "unsupported", "refusal")  # "refusal" sentences decline: left out of scoring
ANSWER_LABELS = ("correct", "partial", "wrong", "refused")
ITEM_KEYS = ("id", "question", "contexts", "answer", "sentences", "answer_label", "sources")


@dataclass(frozen=True)
class LabelledSentence:
    text: str
    cited: tuple[int, ...]  # 1-based context numbers; () when the sentence cites none
    unsupported: bool  # the label: True = "unsupported" (the positive class of detection)
    note: str = ""


@dataclass(frozen=True)
class LabelledItem:
    id: str
    question: str
    contexts: tuple[str, ...]
    answer: str
    sentences: tuple[LabelledSentence, ...]
    answer_label: str = ""  # "" when the line gives none
    extra: Mapping[str, Any] = field(default_factory=dict)
    refusal_sentences: int = 0  # sentences labelled "refusal": they decline, and are left out of `sentences`
    sources: tuple[str, ...] = ()  # each context's source label; () when the line gives none ("passage-N")

    @property
    def unsupported(self) -> bool:
        """The answer-level label: any sentence unsupported."""
        return any(s.unsupported for s in self.sentences)

    def contexts_of(self, sentence: LabelledSentence) -> tuple[str, ...]:
        """The contexts a sentence cites (all of them when it cites none)."""
        return tuple(self.contexts[n - 1] for n in sentence.cited) or self.contexts

    def sources_of(self, sentence: LabelledSentence) -> tuple[str, ...]:
        """The source labels of `contexts_of(sentence)`; () when the item gives none."""
        if not self.sources:
            return ()
        return tuple(self.sources[n - 1] for n in sentence.cited) or self.sources


def _need(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise LabelledSetError(f"{where}: {message}")


def _sentence(d: Any, where: str, n_contexts: int) -> LabelledSentence:
    _need(isinstance(d, dict), where, f"each sentence is an object with text, cited and label, got {d!r:.60}")
    _need(isinstance(d.get("text"), str) and bool(d["text"].strip()), where, "a sentence needs a non-empty 'text'")
    cited = d.get("cited", [])
    _need(isinstance(cited, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in cited), where,
          f"'cited' must be a list of context numbers, got {cited!r:.60}")
    bad = [n for n in cited if not 1 <= n <= n_contexts]
    _need(not bad, where, f"sentence {d['text']!r:.60} cites {bad} but there are {n_contexts} context(s) "
          f"(numbers 1..{n_contexts})")
    _need(d.get("label") in SENTENCE_LABELS, where, f"sentence label {d.get('label')!r} is not one of: "
          f"{', '.join(SENTENCE_LABELS)}")
    note = d.get("note", "")
    _need(isinstance(note, str), where, f"'note' must be a string, got {type(note).__name__}")
    return LabelledSentence(d["text"], tuple(dict.fromkeys(cited)), d["label"] == "unsupported", note)


def parse_item(d: Any, where: str) -> LabelledItem:
    """One labelled answer from a decoded JSON object; errors start with `where` (file:line)."""
    _need(isinstance(d, dict), where, f"expected a JSON object, got {type(d).__name__}")
    missing = [k for k in ITEM_KEYS[:5] if k not in d]
    _need(not missing, where, f"missing key(s) {', '.join(missing)}; an item has: {', '.join(ITEM_KEYS[:5])} "
          "(and optionally answer_label, sources)")
    _need(isinstance(d["id"], str) and bool(d["id"].strip()), where, "'id' must be a non-empty string")
    for key in ("question", "answer"):
        _need(isinstance(d[key], str), where, f"{key!r} must be a string, got {type(d[key]).__name__}")
    _need(isinstance(d["contexts"], list) and all(isinstance(c, str) for c in d["contexts"]), where,
          "'contexts' must be a list of strings (the text of each numbered block)")
    _need(isinstance(d["sentences"], list), where, "'sentences' must be a list of objects")
    label = d.get("answer_label", "")
    _need(label in ("", *ANSWER_LABELS), where, f"answer_label {label!r} is not one of: {', '.join(ANSWER_LABELS)}")
    sources = d.get("sources", [])
    _need(isinstance(sources, list) and all(isinstance(x, str) and x.strip() for x in sources), where,
          "'sources' must be a list of non-empty strings (each context's source label)")
    _need(not sources or len(sources) == len(d["contexts"]), where,
          f"'sources' has {len(sources)} label(s) for {len(d['contexts'])} context(s); give one per context or none")
    parsed = [(_sentence(s, where, len(d["contexts"])), s["label"]) for s in d["sentences"]]
    # A sentence that declines to answer states nothing about the documents: it is not a case for a detector.
    sentences = tuple(s for s, lab in parsed if lab != "refusal")
    return LabelledItem(d["id"], d["question"], tuple(d["contexts"]), d["answer"], sentences, label,
                        {k: v for k, v in d.items() if k not in ITEM_KEYS},
                        refusal_sentences=sum(lab == "refusal" for _, lab in parsed), sources=tuple(sources))


def load_items(path: str | Path, split: str | None = None) -> list[LabelledItem]:
    """The labelled items of a JSONL file (those of one `split` when given); errors name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as e:
        raise LabelledSetError(f"{path}: labelled set not found") from e
    except UnicodeDecodeError as e:
        raise LabelledSetError(f"{path}: not UTF-8 text ({e.reason})") from e
    items: list[LabelledItem] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise LabelledSetError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from e
        item = parse_item(data, where)
        _need(item.id not in seen, where, f"duplicate id {item.id!r} (first on line {seen.get(item.id)})")
        seen[item.id] = lineno
        if split is not None:
            _need("split" in item.extra, where, f"no 'split' key; --split {split} needs one on every item")
            if item.extra["split"] != split:
                continue
        items.append(item)
    _need(bool(items), str(path), "no labelled items" + (f" with split {split!r}" if split is not None else ""))
    return items
