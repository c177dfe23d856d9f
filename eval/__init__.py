"""eval: measure `rag` on question sets (retrieval, answers, faithfulness, refusal; optional ragas).

    from eval import evaluate
    summary = evaluate("corpora/lecture/questions/test.jsonl", index_dir="index/lecture", out_dir="runs/lecture")
    print(summary.metrics["answer"])

Dependencies point one way: eval -> rag -> ingest.
"""

from eval.api import RunSummary, evaluate, rewrite_reports
from eval.errors import EvalError, QuestionError, RunError
from eval.questions import Question, Source, load_questions
from eval.results import EvalResult
from eval.runner import compare, export_finetune, load_results

__all__ = ["EvalError", "EvalResult", "Question", "QuestionError", "RunError", "RunSummary", "Source", "compare",
           "evaluate", "export_finetune", "load_questions", "load_results", "rewrite_reports"]
