"""eval: measure `rag` on question sets (retrieval, answers, faithfulness, refusal; optional ragas), and claim
detectors on labelled answers (`rag verify`).

    from eval import evaluate
    summary = evaluate("corpora/lecture/questions/test.jsonl", index_dir="index/lecture", out_dir="runs/lecture")
    print(summary.metrics.answer.keyword_accuracy, summary.metrics.to_dict())

Dependencies point one way: eval -> rag -> ingest. Names are imported on first use, so that `rag --help`
(which lists `rag eval` and `rag verify` from eval/cli.py) does not load numpy and the checker.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunSummary": "eval.api", "evaluate": "eval.api", "rewrite_reports": "eval.api", "verify_labelled": "eval.api",
    "Comparison": "eval.compare", "compare": "eval.compare",
    "PRF": "eval.detection", "DetectionReport": "eval.detection", "DetectorScore": "eval.detection",
    "EvalError": "eval.errors", "LabelledSetError": "eval.errors", "QuestionError": "eval.errors",
    "RunError": "eval.errors", "export_finetune": "eval.finetune",
    "LabelledItem": "eval.labelled", "LabelledSentence": "eval.labelled", "load_items": "eval.labelled",
    "AnswerMetrics": "eval.metrics", "Counts": "eval.metrics", "HallucinationMetrics": "eval.metrics",
    "Metrics": "eval.metrics", "RefusalMetrics": "eval.metrics", "RetrievalMetrics": "eval.metrics",
    "Question": "eval.questions", "Source": "eval.questions", "load_questions": "eval.questions",
    "EvalResult": "eval.results", "load_results": "eval.runner", "QuestionScores": "eval.scores",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eval' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
