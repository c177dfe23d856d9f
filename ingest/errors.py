"""Errors raised by the ingestion stage."""

from __future__ import annotations


class IngestError(Exception):
    """Base class for ingestion errors."""


class LoaderError(IngestError):
    """A file could not be turned into text; the message names the file and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class IndexLockedError(IngestError):
    """Another process is writing to the index."""


class IndexMismatchError(IngestError):
    """The index was built with settings (e.g. an embedding model) other than those requested."""


class IndexCorruptError(IngestError):
    """The index directory is not a readable rag index."""
