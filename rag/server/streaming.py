"""Answers produced by worker threads and consumed by async routes, with the server's time limits."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import HTTPException, Request

from rag.access import ApiKey
from rag.records import Answer
from rag.server.schemas import QueryBody
from rag.server.state import record, state


class Busy(Exception):
    """No answer worker became free in time (503)."""


async def answer_items(request: Request, question: str, history: list[tuple[str, str]], key: ApiKey,
                       body: QueryBody, verify: bool | None = None, llm: Any = None) -> AsyncIterator[str | Answer]:
    """rag.stream() run by a worker thread. Raises Busy when no worker is free within answer_timeout,
    TimeoutError when the answer takes longer than answer_timeout once started; the worker then stops
    between two deltas (a thread cannot be killed mid-call)."""
    st = state(request)
    timeout = st.config.answer_timeout
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(kind: str, item: Any) -> None:
        try:
            loop.call_soon_threadsafe(items.put_nowait, (kind, item))
        except RuntimeError:  # the loop is gone (shutdown)
            stop.set()

    def work() -> None:
        if stop.is_set():  # the request gave up while this waited for a worker
            return
        put("start", None)
        gen: Iterator[str | Answer] = st.rag.stream(question, history=history, filters=body.filters,
                                                    tenants=key.scope, k=body.k, mode=body.mode, verify=verify,
                                                    llm=llm)
        try:
            for item in gen:
                if stop.is_set():
                    break
                put("item", item)
            put("end", None)
        except BaseException as e:  # handed to the request; the worker thread survives
            put("error", e)
        finally:
            gen.close()

    # The worker runs in this request's context: its log lines carry the request id (rag.logs.REQUEST_ID).
    job = loop.run_in_executor(st.answer_pool, contextvars.copy_context().run, work)
    try:
        try:
            await asyncio.wait_for(items.get(), timeout)
        except TimeoutError:
            raise Busy from None
        deadline = loop.time() + timeout
        while True:
            kind, item = await asyncio.wait_for(items.get(), max(0.0, deadline - loop.time()))
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        job.cancel()


async def first_or_504(request: Request, items: AsyncIterator[str | Answer]) -> str | Answer:
    st = state(request)
    timeout = st.config.answer_timeout
    try:
        return await anext(items)
    except TimeoutError:
        await items.aclose()
        raise HTTPException(504, f"no answer within {timeout:g}s (server.answer_timeout)") from None
    except Busy:
        raise HTTPException(503, f"all {st.workers} answer workers stayed busy for {timeout:g}s; retry later",
                            headers={"Retry-After": "5"}) from None


async def final_answer(request: Request, items: AsyncIterator[str | Answer]) -> Answer:
    item = await first_or_504(request, items)
    try:
        while not isinstance(item, Answer):
            item = await first_or_504(request, items)
    finally:
        await items.aclose()
    return item


def audit_answer(request: Request, a: Answer) -> None:
    record(request, refused=a.refused, sources=[c.source for c in a.citations])
