"""OpenAI-compatible chat completions (plain and streamed), with citations in extra fields."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from rag.records import Answer
from rag.server.deps import Key, check_question
from rag.server.schemas import MODEL_ID, ChatBody, conversation, extras
from rag.server.state import record, state
from rag.server.streaming import answer_items, audit_answer, final_answer, first_or_504

log = logging.getLogger(__name__)
router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat(body: ChatBody, request: Request, key: Key) -> Any:
    """OpenAI-compatible chat; the answer cites [n] and the extra `citations` field lists the passages."""
    if body.model not in (MODEL_ID, ""):
        raise HTTPException(404, f"model {body.model[:100]!r} does not exist; available: {MODEL_ID}")
    question, history = conversation(body.messages)
    record(request, question=question)
    last = max(i for i, m in enumerate(body.messages) if m.role == "user")  # the question (conversation() checked)
    check_question(request, question, body, [m.text for i, m in enumerate(body.messages) if i != last])
    items = answer_items(request, question, history, key, body)
    cid, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
    if not body.stream:
        a = await final_answer(request, items)
        audit_answer(request, a)
        return {"id": cid, "object": "chat.completion", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": a.text},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": a.usage.to_dict(), **extras(a)}
    first = await first_or_504(request, items)
    timeout = state(request).config.answer_timeout

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
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
            yield f"data: {json.dumps({'error': {'message': msg, 'type': 'server_error'}})}\n\n"
            return
        finally:
            await items.aclose()
        audit_answer(request, item)
        if item.refused and "".join(streamed).strip() != item.text:
            yield chunk({"content": ("\n\n" if streamed else "") + item.text})
        yield chunk({}, "stop", usage=item.usage.to_dict(), **extras(item))
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
