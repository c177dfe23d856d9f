"""Ingestion: from a folder of documents to a persistent, incremental, crash-safe index.

Names are imported on first use: `import ingest.records` (which the CLI's help and every query pay for) must not
load the pipeline, its parsers and numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "IngestConfig": "ingest.config",
    "IndexLockedError": "ingest.errors", "IndexMismatchError": "ingest.errors", "IngestError": "ingest.errors",
    "LoaderError": "ingest.errors",
    "IngestReport": "ingest.pipeline", "ingest_paths": "ingest.pipeline",
    "Chunk": "ingest.records", "Document": "ingest.records", "Section": "ingest.records",
}

__all__ = [
    "Chunk",
    "Document",
    "IndexLockedError",
    "IndexMismatchError",
    "IngestConfig",
    "IngestError",
    "IngestReport",
    "LoaderError",
    "Section",
    "ingest_paths",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
