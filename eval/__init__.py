"""eval: measure `rag` on question sets (retrieval, answers, faithfulness, refusal; optional ragas), and claim
detectors on labelled answers (`rag verify`).

    from eval import evaluate
    summary = evaluate("corpora/lecture/questions/test.jsonl", index_dir="index/lecture", out_dir="runs/lecture")
    print(summary.metrics.answer.keyword_accuracy, summary.metrics.to_dict())

Dependencies point one way: eval -> rag -> ingest.
"""

from eval.api import RunSummary, evaluate, rewrite_reports, verify_labelled
from eval.compare import Comparison, compare
from eval.detection import PRF, DetectionReport, DetectorScore
from eval.errors import EvalError, LabelledSetError, QuestionError, RunError
from eval.finetune import export_finetune
from eval.labelled import LabelledItem, LabelledSentence, load_items
from eval.metrics import AnswerMetrics, Counts, HallucinationMetrics, Metrics, RefusalMetrics, RetrievalMetrics
from eval.questions import Question, Source, load_questions
from eval.results import EvalResult
from eval.runner import load_results
from eval.scores import QuestionScores

__all__ = ["PRF", "AnswerMetrics", "Comparison", "Counts", "DetectionReport", "DetectorScore", "EvalError",
           "EvalResult", "HallucinationMetrics", "LabelledItem", "LabelledSentence", "LabelledSetError", "Metrics",
           "Question", "QuestionError", "QuestionScores", "RefusalMetrics", "RetrievalMetrics", "RunError",
           "RunSummary", "Source", "compare", "evaluate", "export_finetune", "load_items", "load_questions",
           "load_results", "rewrite_reports", "verify_labelled"]
