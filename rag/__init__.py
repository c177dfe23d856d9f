"""rag: grounded question answering over private documents.

    import rag
    with rag.open(".rag/index") as r:
        print(r.ask("What is retrieval-augmented generation?").text)
"""

from rag.api import RAG, Stats, ingest, open_pipeline, stats
from rag.config import Config, load_config
from rag.records import Answer, Citation, Evidence, Hit, Usage

open = open_pipeline  # noqa: A001 - `rag.open(index_dir)` is the public entry point

__all__ = ["RAG", "Answer", "Citation", "Config", "Evidence", "Hit", "Stats", "Usage", "ingest", "load_config",
           "open", "open_pipeline", "stats"]
