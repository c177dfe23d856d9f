"""`local`: a bundled GGUF instruct model run in-process by llama.cpp (llama-cpp-python); nothing to start."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator

from rag.config import LocalLLMConfig
from rag.errors import LLMError
from rag.llm.base import register
from rag.llm.models import resolve_gguf
from rag.prompt import Prompt
from rag.records import Usage

log = logging.getLogger(__name__)


class LocalLLM:
    """llama.cpp in this process. One generation at a time (the model is not re-entrant)."""

    name = "local"

    def __init__(self, config: LocalLLMConfig) -> None:
        # llama.cpp's OpenMP threads busy-wait; on a small shared machine that starves everything else.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from llama_cpp import Llama

        path = resolve_gguf(config.model)
        self.model = config.model
        self._config = config
        self._lock = threading.Lock()
        self._llm = Llama(model_path=str(path), n_ctx=config.n_ctx, n_threads=config.threads,
                          n_threads_batch=config.threads, seed=config.seed, verbose=False)

    def close(self) -> None:
        """Free the model now rather than at interpreter exit (llama.cpp's finaliser is noisy then)."""
        with self._lock:
            self._llm.close()

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]:
        cfg = self._config
        kwargs: dict[str, object] = {}
        if prompt.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        messages = [m.to_dict() for m in prompt.messages]
        with self._lock:
            n_prompt = len(self._llm.tokenize(
                "\n".join(m["content"] for m in messages).encode("utf-8"), add_bos=True, special=False))
            if n_prompt + (prompt.max_tokens or cfg.max_tokens) > cfg.n_ctx:
                raise LLMError(f"prompt of ~{n_prompt} tokens does not fit the local model's context "
                               f"({cfg.n_ctx}); lower answer.context_tokens")
            try:
                chunks = self._llm.create_chat_completion(
                    messages=messages, stream=True, temperature=cfg.temperature,
                    max_tokens=prompt.max_tokens or cfg.max_tokens, seed=cfg.seed, **kwargs)
                produced: list[str] = []
                for chunk in chunks:
                    delta = chunk["choices"][0].get("delta", {}).get("content")
                    if delta:
                        produced.append(delta)
                        yield delta
            except ValueError as e:
                raise LLMError(f"local model {self.model}: {e}") from e
        yield Usage(n_prompt, self.count_tokens("".join(produced)))


@register("local")
def _factory(config: LocalLLMConfig, **_: object) -> LocalLLM:
    return LocalLLM(config)
