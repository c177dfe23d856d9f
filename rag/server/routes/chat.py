"""OpenAI-compatible chat completions (plain and streamed), with citations in extra fields.

Every request field of OpenAI's API is honoured or refused by name (rag/server/openai_params.py); the caller's
system and developer messages, max_tokens and stop shape the answer through a per-request view of the LLM
(rag/server/generation.py). Only checked sentences are streamed: the streamed text is the final answer.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from rag.records import Answer
from rag.server.deps import Key, check_question
from rag.server.generation import RequestLLM
from rag.server.openai_params import ParamError, Sampling, parse_chat
from rag.server.schemas import MODEL_ID, error_response, extras
from rag.server.state import record, state
from rag.server.streaming import answer_items, audit_answer, final_answer, first_or_504

log = logging.getLogger(__name__)
router = APIRouter()


def sampling(config: Any) -> Sampling:
    """The sampling settings of the configured answering backend (what a request may ask for)."""
    name = config.answer.llm
    if name == "local":
        c = config.local
        return Sampling("llm.local", c.temperature, 1.0, 0.0, 0.0, c.seed, c.max_tokens)
    if name == "openai":
        c = config.openai
        return Sampling("llm.openai", c.temperature, c.top_p, c.presence_penalty, c.frequency_penalty, c.seed,
                        c.max_tokens)
    return Sampling(name, 0.0, 1.0, 0.0, 0.0, None, None)  # extractive: nothing is sampled


@router.post("/v1/chat/completions", response_model=None)
async def chat(request: Request, key: Key) -> Any:
    """OpenAI-compatible chat; the answer cites [n] and the extra `citations` field lists the passages."""
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error_response(400, "the request body is not valid JSON (send JSON with Content-Type: "
                                   "application/json)", code="invalid_json")
    model = data.get("model", MODEL_ID) if isinstance(data, dict) else MODEL_ID
    if isinstance(model, str) and model not in (MODEL_ID, ""):
        return error_response(404, f"The model {model[:100]!r} does not exist; available: {MODEL_ID}", param="model",
                              code="model_not_found")
    rag = state(request).rag
    try:
        req = parse_chat(data, sampling(rag.config))
    except ParamError as e:
        record(request, question=_question_of(data))
        return error_response(400, str(e), param=e.param, code=e.code)
    record(request, question=req.question)
    if req.tags:
        log.info("chat request tags: %s", json.dumps(req.tags, ensure_ascii=False, default=str)[:1000])
    check_question(request, req.question, req, req.earlier)  # type: ignore[arg-type] - has filters
    llm = RequestLLM(lambda: rag.llm, req.instructions, req.max_tokens, req.stop, sampling(rag.config).max_tokens)
    items = answer_items(request, req.question, req.history, key, req, llm=llm)  # type: ignore[arg-type]
    cid, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
    base = {"id": cid, "created": created, "model": MODEL_ID, "system_fingerprint": None, "service_tier": "default"}
    if not req.stream:
        a = await final_answer(request, items)
        audit_answer(request, a)
        return {**base, "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": a.text, "refusal": None},
                             "finish_reason": finish_reason(llm), "logprobs": None}],
                "usage": a.usage.to_dict(), **extras(a)}
    first = await first_or_504(request, items)
    timeout = state(request).config.answer_timeout

    def chunk(delta: dict[str, Any], finish: str | None = None, choices: bool = True, **extra: Any) -> str:
        data = {**base, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}] if choices else [],
                **extra}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        streamed: list[str] = []
        item = first
        try:
            while not isinstance(item, Answer):
                streamed.append(item)
                yield chunk({"content": item})
                item = await anext(items)
        except Exception as e:  # a timeout or a failure mid-stream: the status line is sent already
            is_timeout = isinstance(e, TimeoutError)
            if not is_timeout:
                log.exception("streaming an answer failed")
            record(request, status=504 if is_timeout else 500)
            msg = f"no answer within {timeout:g}s" if is_timeout else "answering failed; see the server log"
            error = {"message": msg, "type": "server_error", "param": None,
                     "code": "timeout" if is_timeout else "internal_error"}
            yield f"data: {json.dumps({'error': error})}\n\n"
            return
        finally:
            await items.aclose()
        audit_answer(request, item)
        if item.refused and "".join(streamed).strip() != item.text:
            yield chunk({"content": ("\n\n" if streamed else "") + item.text})
        yield chunk({}, finish_reason(llm), **extras(item))
        if req.include_usage:  # as OpenAI: one more chunk, without choices, carrying the usage
            yield chunk({}, choices=False, usage=item.usage.to_dict())
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


def finish_reason(llm: RequestLLM) -> str:
    """"length" when the answer was cut at its token limit, else "stop" (also when a stop sequence ended it)."""
    return "length" if llm.cut and not llm.stopped else "stop"


def _question_of(data: Any) -> str | None:
    """The last user message's text, for the audit row of a refused request."""
    try:
        last = [m for m in data["messages"] if m.get("role") == "user"][-1]["content"]
        return last if isinstance(last, str) else None
    except (KeyError, IndexError, TypeError, AttributeError):
        return None

