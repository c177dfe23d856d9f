"""rag: grounded question answering over private documents.

    import rag
    with rag.open(".rag/index") as r:
        print(r.ask("What is retrieval-augmented generation?").text)

Names are imported on first use, so that `rag --help` does not pay for numpy, FAISS or the models.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "RAG": "rag.api", "Readiness": "rag.api", "Stats": "rag.api", "ingest": "rag.api", "open_pipeline": "rag.api",
    "stats": "rag.api",
    "Config": "rag.config", "find_config_file": "rag.config", "load_config": "rag.config",
    "Answer": "rag.records", "Citation": "rag.records", "Evidence": "rag.records", "Hit": "rag.records",
    "Usage": "rag.records",
}
__all__ = ["RAG", "Answer", "Citation", "Config", "Evidence", "Hit", "Readiness", "Stats", "Usage", "__version__",
           "find_config_file", "ingest", "load_config", "open", "open_pipeline", "stats"]


def __getattr__(name: str) -> Any:
    if name == "open":  # `rag.open(index_dir)` is the public entry point
        name = "open_pipeline"
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
