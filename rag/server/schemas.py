"""Shapes of the HTTP API: request bodies, errors, the OpenAI extras, upload helpers."""

import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import HTTPException, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, Field

from ingest.fsutil import atomic_path
from rag.records import Answer

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
                422: "invalid_request_error", 429: "rate_limit_error", 503: "server_busy", 504: "timeout_error"}
UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MODEL_ID = "rag"
MAX_MESSAGE = 2000


_ERROR_CODES = {401: "invalid_api_key", 403: "permission_denied", 404: "not_found", 409: "conflict",
                413: "request_too_large", 422: "invalid_request", 429: "rate_limit_exceeded", 500: "internal_error",
                502: "upstream_error", 503: "server_busy", 504: "timeout"}


def error_response(status: int, message: str, headers: dict[str, str] | None = None, param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}; `param` names the request field at
    fault, `code` is a string (or null)."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if len(message) > MAX_MESSAGE:  # a message may quote a name the client sent: never echo a megabyte back
        message = message[:MAX_MESSAGE - 1] + "…"
    message = message.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate cannot be sent as UTF-8
    error = {"message": message, "type": kind, "param": param, "code": code or _ERROR_CODES.get(status)}
    return JSONResponse({"error": error}, status, headers=headers)


# --- request bodies -----------------------------------------------------------------------------
class QueryBody(BaseModel):
    filters: list[str] = Field(default_factory=list, description="KEY=VALUE: source=GLOB, type=, section=GLOB, tag=")
    k: int | None = Field(None, ge=1, le=100)
    mode: Literal["dense", "keyword", "hybrid"] | None = None


class AskBody(QueryBody):
    question: str
    history: list[tuple[str, str]] = Field(default_factory=list, description="earlier (user, assistant) turns")
    verify: bool | None = None


class RetrieveBody(QueryBody):
    query: str = Field(validation_alias=AliasChoices("query", "question"))


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):  # OpenAI content parts: only the text ones count
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatBody(QueryBody):
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def conversation(messages: list[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
    """The last user message is the question; earlier user/assistant messages pair up into history."""
    turns = [(m.role, m.text) for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise HTTPException(400, "the last message must be a user message: it is the question")
    history: list[tuple[str, str]] = []
    pending: str | None = None
    for role, text in turns[:-1]:
        if role == "user":
            if pending is not None:
                history.append((pending, ""))
            pending = text
        else:
            history.append((pending or "", text))
            pending = None
    if pending is not None:
        history.append((pending, ""))
    return turns[-1][1], history


def safe_name(name: str) -> str:
    """A file name with no folders and only [A-Za-z0-9._-] (other runs become '_')."""
    base = re.split(r"[\\/]", name or "")[-1]
    clean = UNSAFE_NAME.sub("_", base).lstrip("._-")[:120]
    if not clean or "." not in clean:
        raise HTTPException(400, f"bad file name {name!r}: it needs a name and an extension")
    return clean


@dataclass
class Job:
    id: str
    tenant: str | None
    files: list[str]
    status: str = "queued"  # queued | running | done | failed
    created: float = field(default_factory=time.time)
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def extras(a: Answer) -> dict[str, Any]:
    """Fields OpenAI clients ignore: the cited passages and whether the system refused."""
    return {"citations": [c.to_dict() for c in a.citations], "refused": a.refused,
            "refusal_reason": a.refusal_reason, "answer": a.text}


def private_dir(path: Path) -> Path:
    """A folder only its owner may list or enter (0700), made if missing, tightened if it was made before."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def save_upload(upload: UploadFile, target: Path) -> Path:
    """Write an upload to `target` (owner read/write only, 0600, in a 0700 folder), whole or not at all."""
    private_dir(target.parent)
    with (atomic_path(target, mode=0o600, unique=True) as tmp,
          os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out):
        while block := upload.file.read(1 << 20):
            out.write(block)
    return target
