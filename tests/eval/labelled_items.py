"""A small hand-labelled set in the `rag verify` format, with each baseline's verdicts worked out by hand.

Sentence labels: S = supported, U = unsupported. Per sentence, (flag-everything, not-a-verbatim-substring,
ten-line rule) verdicts: TP / FP / FN / TN.
"""

from __future__ import annotations

import json
from pathlib import Path

ETNA = "Mount Etna is the most active volcano in Europe. Etna is about 3,357 metres high."
DANUBE = "The Danube flows through ten countries."
SQLITE = "The PRAGMA foreign_keys setting is off by default. A VACUUM cannot be run inside a transaction."
POMPEII = "Etna is about 3,357 metres high. Vesuvius destroyed Pompeii in the year 79."


def sentence(text: str, cited: list[int], label: str) -> dict:
    return {"text": text, "cited": cited, "label": label, "note": ""}


ITEMS = [
    {"id": "i1", "question": "How high is Etna?", "contexts": [ETNA, DANUBE],
     "answer": "Etna is about 3,357 metres high [1]. It is the most active volcano in Asia [1].",
     "sentences": [sentence("Etna is about 3,357 metres high.", [1], "supported"),  # FP TN TN
                   sentence("It is the most active volcano in Asia.", [1], "unsupported")],  # TP TP TP (Asia)
     "answer_label": "partial", "backend": "local", "split": "dev"},
    {"id": "i2", "question": "How many countries does the Danube flow through?", "contexts": [ETNA, DANUBE],
     "answer": "The Danube flows through ten countries [2]. The Danube does not reach the sea [2].",
     "sentences": [sentence("The Danube flows through ten countries.", [2], "supported"),  # FP TN TN
                   sentence("The Danube does not reach the sea.", [2], "unsupported")],  # TP TP TP (1/3 words)
     "answer_label": "correct", "split": "dev"},
    {"id": "i3", "question": "What are the defaults?", "contexts": [SQLITE],
     "answer": "By default, the PRAGMA foreign_keys setting is off [1]. A VACUUM can be run inside a transaction [1].",
     "sentences": [sentence("By default, the PRAGMA foreign_keys setting is off.", [1], "supported"),  # FP FP TN
                   sentence("A VACUUM can be run inside a transaction.", [1], "unsupported")],  # TP TP TP (negation)
     "split": "dev"},
    {"id": "i4", "question": "Tell me about Etna.", "contexts": [POMPEII],
     "answer": "Mount Etna is roughly 3357 metres tall [1]. Etna destroyed Pompeii [1].",
     "sentences": [sentence("Mount Etna is roughly 3357 metres tall.", [1], "supported"),  # FP FP FP (3357)
                   sentence("Etna destroyed Pompeii.", [1], "unsupported")],  # TP TP FN (every word is there)
     "answer_label": "wrong", "split": "test"},
    {"id": "i5", "question": "Who wrote it?", "contexts": [DANUBE],
     "answer": "I cannot answer this from the provided documents.", "sentences": [], "answer_label": "refused",
     "split": "test"},
    {"id": "i6", "question": "Where does the Rhine flow?", "contexts": ["Rivers are long.",
                                                                        "The Rhine flows into the North Sea."],
     "answer": "The Rhine flows into the North Sea.",
     "sentences": [sentence("The Rhine flows into the North Sea.", [], "supported")],  # FP TN TN (any context)
     "split": "test"},
    {"id": "i7", "question": "Where is Etna?", "contexts": ["Mount Etna stands on the island of Sicily."],
     "answer": "Etna is in Sicily [1].",
     "sentences": [sentence("Etna is in Sicily.", [1], "supported")],  # FP FP TN
     "split": "test", "group": "g7"},
]

# Sentences: 4 unsupported, 6 supported. Answers: i1-i4 positive, i5-i7 negative.
EXPECTED = {
    "flag-everything": {"sentence": {"tp": 4, "fp": 6, "fn": 0, "tn": 0, "precision": 0.4, "recall": 1.0,
                                     "f1": 0.571429},
                        "answer": {"tp": 4, "fp": 2, "fn": 0, "tn": 1, "precision": 0.666667, "recall": 1.0,
                                   "f1": 0.8}},
    "not-a-verbatim-substring": {"sentence": {"tp": 4, "fp": 3, "fn": 0, "tn": 3, "precision": 0.571429,
                                              "recall": 1.0, "f1": 0.727273},
                                 "answer": {"tp": 4, "fp": 1, "fn": 0, "tn": 2, "precision": 0.8, "recall": 1.0,
                                            "f1": 0.888889}},
    "ten-line rule": {"sentence": {"tp": 3, "fp": 1, "fn": 1, "tn": 5, "precision": 0.75, "recall": 0.75, "f1": 0.75},
                      "answer": {"tp": 4, "fp": 0, "fn": 0, "tn": 3, "precision": 1.0, "recall": 1.0, "f1": 1.0}},
}


def write_items(path: Path, items: list[dict] = ITEMS) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path
