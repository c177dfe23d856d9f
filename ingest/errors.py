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


class IndexUnavailableError(IngestError):
    """An open index cannot be read now (its folder is gone, its database unreachable). `reason` says which in a few
    words that may be shown to anyone; the message adds the details (the server's error) for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
