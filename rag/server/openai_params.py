"""Every request field of OpenAI's chat completions API, honoured or refused by name (400, OpenAI's error shape).

`parse_chat(data, cfg)` turns a JSON body into a `ChatRequest`: what the answer path needs (the question, the
history, the caller's own instructions, the token limit, stop sequences, whether usage is streamed) or a
`ParamError` naming the parameter. The decision for each field is in the README ("The OpenAI surface").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_STOP = 4  # as OpenAI
# Fields that identify or tag a request: accepted and logged with the request id, never stored, no effect on the answer.
TAGS = ("user", "safety_identifier", "prompt_cache_key", "metadata")


class ParamError(Exception):
    """A request field that rag cannot honour: 400 with the parameter named (OpenAI's `param`) and a string code."""

    def __init__(self, param: str | None, message: str, code: str = "unsupported_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Open):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # no obfuscation padding is ever added


class ChatFields(BaseModel):
    """The body of POST /v1/chat/completions: OpenAI's fields, plus rag's retrieval options (filters, k, mode)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = "rag"
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)
    store: bool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None
    # rag's own options (not OpenAI's): retrieval filters, number of passages, retrieval mode
    filters: list[str] = Field(default_factory=list)
    k: int | None = Field(None, ge=1, le=100)
    mode: str | None = None


@dataclass(frozen=True)
class Sampling:
    """What the server samples with (its llm.* settings): the only values of the sampling fields it accepts."""

    backend: str  # the config table, e.g. "llm.local", or the name of a backend without one ("extractive")
    temperature: float = 0.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = 0
    max_tokens: int | None = None  # the server's cap on generated tokens (None: no cap, e.g. extractive)

    def setting(self, name: str) -> str:
        """Where the server's value of a sampling field comes from, for messages."""
        return f"the server's {self.backend}.{name}" if self.backend.startswith("llm.") else \
            f"the {self.backend} backend samples nothing"


@dataclass(frozen=True)
class ChatRequest:
    """A chat request as the answer path takes it."""

    question: str
    history: list[tuple[str, str]]
    earlier: list[str]  # text of every message but the question (checked against server.max_history_chars)
    instructions: str  # the caller's system and developer messages, joined
    max_tokens: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    filters: list[str]
    k: int | None
    mode: str | None
    tags: dict[str, Any]


def parse_chat(data: Any, sampling: Sampling) -> ChatRequest:
    """Validate a chat body; a field rag cannot honour raises ParamError naming it."""
    if not isinstance(data, dict):
        raise ParamError(None, "the request body must be a JSON object", "invalid_type")
    try:
        body = ChatFields.model_validate(data)
    except ValidationError as e:
        raise _from_validation(e) from None
    _check_unsupported(body)
    _check_sampling(body, sampling)
    if body.stream_options is not None and not body.stream:
        raise ParamError("stream_options", "stream_options is only allowed when stream is true", "invalid_value")
    if body.mode is not None and body.mode not in ("dense", "keyword", "hybrid"):
        raise ParamError("mode", f"mode {body.mode[:40]!r} is not one of dense, keyword, hybrid", "invalid_value")
    stop = _stops(body.stop)
    question, history, earlier, instructions = _conversation(body.messages)
    limit = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    tags = {name: getattr(body, name) for name in TAGS if getattr(body, name) is not None}
    return ChatRequest(question, history, earlier, instructions, limit, stop, bool(body.stream),
                       bool(body.stream_options and body.stream_options.include_usage), body.filters, body.k, body.mode,
                       tags)


def _from_validation(e: ValidationError) -> ParamError:
    err = e.errors()[0]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or None
    if err["type"] == "extra_forbidden":
        return ParamError(param, f"Unrecognized request argument supplied: {param}", "unknown_parameter")
    if err["type"] == "missing":
        return ParamError(param, f"Missing required parameter: {param}", "missing_required_parameter")
    return ParamError(param, f"Invalid value for {param}: {err['msg']}", "invalid_value")


def _unsupported(param: str, why: str) -> ParamError:
    return ParamError(param, f"{param} is not supported by rag: {why}", "unsupported_parameter")


def _check_unsupported(b: ChatFields) -> None:
    """Fields for capabilities rag does not have: accepted only at their 'off' value."""
    if b.n not in (None, 1):
        raise ParamError("n", "n must be 1: rag gives one grounded answer per request")
    if b.tools or b.functions:
        raise _unsupported("tools" if b.tools else "functions", "answers come from the indexed documents; no tools")
    for name in ("tool_choice", "function_call"):
        value = getattr(b, name)
        if value not in (None, "none", "auto"):
            raise ParamError(name, f"{name} must be 'none' or 'auto': no tools are available")
    if b.logprobs or b.top_logprobs:
        raise _unsupported("logprobs" if b.logprobs else "top_logprobs", "the text sent is checked sentences, "
                           "not the model's raw tokens, so it has no token log-probabilities")
    if b.logit_bias:
        raise _unsupported("logit_bias", "token biases would act on the grounded answer's wording")
    fmt = (b.response_format or {}).get("type", "text")
    if fmt != "text":
        raise ParamError("response_format", f"response_format {fmt!r} is not supported: answers are cited text; "
                                            "use {'type': 'text'} or leave it out")
    if b.store:
        raise ParamError("store", "store must be false: rag keeps no completions (its audit log is the only record)")
    if b.service_tier not in (None, "auto", "default"):
        raise ParamError("service_tier", "service_tier must be 'auto' or 'default': rag has one tier")
    if b.modalities not in (None, ["text"]) or b.audio is not None:
        raise _unsupported("audio" if b.audio is not None else "modalities", "answers are text only")
    for name in ("prediction", "reasoning_effort", "verbosity", "web_search_options"):
        if getattr(b, name) is not None:
            raise _unsupported(name, {"prediction": "predicted outputs would bypass the answer's checks",
                                      "reasoning_effort": "the answering model is not a reasoning model",
                                      "verbosity": "answer length is set by max_tokens and the grounding rules",
                                      "web_search_options": "answers come only from the indexed documents"}[name])


def _check_sampling(b: ChatFields, s: Sampling) -> None:
    """The server samples as configured (its claim checks and refusal thresholds are calibrated there): a sampling
    field is accepted when it asks for exactly that, refused otherwise."""
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = getattr(b, name)
        own = getattr(s, name)
        if value is not None and not math.isclose(value, own, abs_tol=1e-9):
            raise ParamError(name, f"{name} must be {own:g} ({s.setting(name)}) or left out: rag samples answers "
                                   "as configured, where its claim checks and refusal thresholds are calibrated")
    if b.seed is not None and s.temperature > 0 and b.seed != s.seed:
        raise ParamError("seed", f"seed must be {s.seed} ({s.setting('seed')}) or left out")


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    items = [stop] if isinstance(stop, str) else list(stop or [])
    if len(items) > MAX_STOP:
        raise ParamError("stop", f"stop has {len(items)} sequences; at most {MAX_STOP} are allowed", "invalid_value")
    if any(not s for s in items):
        raise ParamError("stop", "stop sequences must not be empty", "invalid_value")
    return tuple(items)


def _text(m: Message, index: int) -> str:
    if isinstance(m.content, list):
        parts = []
        for j, part in enumerate(m.content):
            if part.get("type") not in ("text", "input_text"):
                raise ParamError(f"messages[{index}].content[{j}].type", f"content part {part.get('type')!r} is not "
                                 "supported: rag reads text only", "unsupported_value")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    return m.content or ""


def _conversation(messages: list[Message]) -> tuple[str, list[tuple[str, str]], list[str], str]:
    """(question, history, earlier texts, instructions): the last user message is the question; earlier user and
    assistant messages pair up into history; system and developer messages are the caller's instructions."""
    turns: list[tuple[str, str]] = []
    instructions: list[str] = []
    for i, m in enumerate(messages):
        if m.role in ("tool", "function") or getattr(m, "tool_calls", None) or getattr(m, "function_call", None):
            raise ParamError(f"messages[{i}].role", "tool messages and tool calls are not supported: no tools are "
                                                    "available", "unsupported_value")
        if m.role not in ("system", "developer", "user", "assistant"):
            raise ParamError(f"messages[{i}].role", f"role {m.role[:40]!r} is not one of system, developer, user, "
                                                    "assistant", "invalid_value")
        text = _text(m, i)
        if m.role in ("system", "developer"):
            if text.strip():
                instructions.append(text.strip())
        else:
            turns.append((m.role, text))
    if not turns or turns[-1][0] != "user":
        raise ParamError("messages", "the last message must be a user message: it is the question", "invalid_value")
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
    earlier = [t for _, t in turns[:-1]] + instructions
    return turns[-1][1], history, earlier, "\n\n".join(instructions)
