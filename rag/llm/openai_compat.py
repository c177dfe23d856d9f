"""`openai`: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp) through the official SDK."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterator
from urllib.parse import urlparse

from rag.config import OpenAIConfig
from rag.errors import LLMConfigError, LLMError
from rag.llm.base import register
from rag.prompt import Prompt
from rag.records import Usage

log = logging.getLogger(__name__)
_OPENAI_HOST = "api.openai.com"  # the one server that always needs a key


class OpenAICompatLLM:
    """Chat completions with streaming; transient failures retried with backoff, then a clear LLMError."""

    name = "openai"

    def __init__(self, config: OpenAIConfig) -> None:
        import openai

        key = os.environ.get(config.api_key_env, "")
        host = (urlparse(config.base_url).hostname or "").lower()
        if not key and (host == _OPENAI_HOST or host.endswith("." + _OPENAI_HOST)):
            raise LLMConfigError(
                f"no API key: set the environment variable {config.api_key_env} (llm.openai.api_key_env) "
                f"for {config.base_url}"
            )
        self.model = config.model
        self._config = config
        self.concurrent = config.concurrent  # a second request may run while a stream is open (rag.drafting)
        self._openai = openai
        # A keyless server (Ollama, vLLM, llama.cpp: local or on another host) gets no Authorization header at all,
        # never a dummy key; the SDK insists on a key, so it is given a placeholder that every request omits.
        self._headers: dict[str, object] = {} if key else {"Authorization": openai.Omit()}
        # Retries are done here, not by the SDK, so that failures mid-stream and malformed bodies are
        # retried by the same rule and attempts do not multiply.
        self._client = openai.OpenAI(base_url=config.base_url, api_key=key or "no-key-sent", timeout=config.timeout,
                                     max_retries=0, default_headers=self._headers or None)

    def count_tokens(self, text: str) -> int:
        # The server's tokenizer is unknown here; ~4 characters a token is the usual estimate for English.
        return max(1, len(text) // 4) if text else 0

    def _request(self, prompt: Prompt) -> dict[str, object]:
        cfg = self._config
        req: dict[str, object] = {
            "model": cfg.model,
            "messages": [m.to_dict() for m in prompt.messages],
            "temperature": cfg.temperature,
            "max_tokens": prompt.max_tokens or cfg.max_tokens,
            "top_p": cfg.top_p,
            "frequency_penalty": cfg.frequency_penalty,
            "presence_penalty": cfg.presence_penalty,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if cfg.seed is not None:
            req["seed"] = cfg.seed
        if prompt.json_mode:
            req["response_format"] = {"type": "json_object"}
        if self._headers:
            req["extra_headers"] = self._headers
        return req

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]:
        oa = self._openai
        cfg = self._config
        attempts = cfg.max_retries + 1
        for attempt in range(1, attempts + 1):
            produced = False
            try:
                usage = None
                finished = False
                for chunk in self._client.chat.completions.create(**self._request(prompt)):
                    if getattr(chunk, "usage", None):
                        usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                    if not getattr(chunk, "choices", None):
                        continue
                    finished = finished or bool(chunk.choices[0].finish_reason)
                    delta = chunk.choices[0].delta
                    text = getattr(delta, "content", None) if delta is not None else None
                    if text:
                        produced = True
                        yield text
                if not finished:
                    raise _Truncated("the stream ended before the answer was complete (connection dropped?)")
                if usage is not None:
                    yield usage
                return
            except (oa.APIConnectionError, oa.APITimeoutError, oa.InternalServerError, oa.RateLimitError,
                    oa.APIResponseValidationError, _Truncated, ValueError, AttributeError, TypeError) as e:
                # A retry is safe only before any text reached the caller.
                if produced or attempt == attempts:
                    raise LLMError(self._describe(e, attempt)) from e
                delay = min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random())
                log.warning("LLM request failed (%s); retry %d/%d in %.1fs", type(e).__name__, attempt,
                            attempts - 1, delay)
                time.sleep(delay)
            except oa.APIStatusError as e:
                raise LLMError(self._describe(e, attempt)) from e

    def p_yes(self, prompt: Prompt) -> float:
        """P("yes") against P("no") for the first token of the reply, from the server's top log-probabilities
        (OpenAI, vLLM and llama.cpp's server return them; a server that does not gives an LLMError)."""
        import math

        req = {**self._request(prompt), "stream": False, "max_tokens": 1, "temperature": 0.0, "logprobs": True,
               "top_logprobs": 10}
        req.pop("stream_options", None)
        try:
            reply = self._client.chat.completions.create(**req)
            top = reply.choices[0].logprobs.content[0].top_logprobs
        except (self._openai.OpenAIError, AttributeError, IndexError, TypeError) as e:
            raise LLMError(f"LLM at {self._config.base_url} gave no token probabilities for a yes/no check ({e})") from e
        yes = sum(math.exp(t.logprob) for t in top if t.token.strip().lower() == "yes")
        no = sum(math.exp(t.logprob) for t in top if t.token.strip().lower() == "no")
        if yes + no == 0:
            raise LLMError(f"LLM at {self._config.base_url} answered a yes/no check with neither yes nor no")
        return yes / (yes + no)

    def _describe(self, e: Exception, attempt: int) -> str:
        oa = self._openai
        what = {
            oa.APITimeoutError: f"timed out after {self._config.timeout:g}s",
            oa.APIConnectionError: "connection failed or dropped",
            oa.RateLimitError: "rate limited (429)",
            oa.InternalServerError: "server error",
            oa.APIResponseValidationError: "malformed response",
        }
        reason = next((v for k, v in what.items() if isinstance(e, k)), "")
        if isinstance(e, oa.APIStatusError):
            reason = f"{reason} (HTTP {e.status_code}: {_short(e.message)})" if reason else \
                f"HTTP {e.status_code}: {_short(e.message)}"
        elif isinstance(e, _Truncated):
            reason = str(e)
        elif isinstance(e, ValueError | AttributeError | TypeError):
            reason = f"malformed response ({_short(str(e))})"
        return (f"LLM at {self._config.base_url} (model {self.model}) failed: {reason}; "
                f"gave up after {attempt} attempt(s)")


class _Truncated(Exception):
    """A stream that stopped without a finish reason."""


def _short(s: str, n: int = 200) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


@register("openai")
def _factory(config: OpenAIConfig, **_: object) -> OpenAICompatLLM:
    return OpenAICompatLLM(config)
