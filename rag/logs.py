"""Logging set-up for the faces on top (CLI, server): text or JSON lines on stderr, with a request id.

The library only logs through `logging`; this module is called by the CLI once (and by each worker process of
`rag serve --workers N`, with the settings of its parent).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("rag_request_id", default="")
_NOISY = ("faiss.loader", "sentence_transformers", "httpx", "transformers", "urllib3")


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id (when serving), exception."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        rid = getattr(record, "request_id", "")
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: int = logging.WARNING, fmt: str = "text") -> None:
    """Send log records to stderr as text or JSON lines (replacing handlers set before)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def settings() -> tuple[int, str]:
    """The root logger's level and format ("json" when configure() set JSON lines, else "text"), to hand on to
    child processes."""
    root = logging.getLogger()
    fmt = "json" if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers) else "text"
    return root.level, fmt
