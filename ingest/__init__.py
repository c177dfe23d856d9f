"""Ingestion: from a folder of documents to a persistent, incremental, crash-safe index."""

from ingest.config import IngestConfig
from ingest.errors import IndexLockedError, IndexMismatchError, IngestError, LoaderError
from ingest.pipeline import IngestReport, ingest_paths
from ingest.records import Chunk, Document, Section

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
