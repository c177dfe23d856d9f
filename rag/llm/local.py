"""`local`: a bundled GGUF instruct model run in-process by llama.cpp (llama-cpp-python); nothing to start.

Prompts are rendered with the model's own chat template and handled as tokens, so that the answerability
question and the answer share llama.cpp's KV cache (the same system prompt and documents): each call evaluates
only the tokens after the longest prefix already cached. Claim checks read a sentence's cited block alone; they
run in a second llama.cpp model and context opened from the same GGUF file (the OS shares its mapped pages; a
second KV cache and any weights llama.cpp repacks are extra memory), so they never evict the answer's cache and
share the system prompt (and a block cited twice) among themselves. A check citing the answer's first block opens
as the answer's prompt does (the same system prompt, then that block with its source label): the checks' context
then copies that part of the answer's cache (`llm.local.reuse_answer_cache`) instead of reading the block again.
Should the second context fail to open, checks fall back to the answer's context.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import threading
from collections.abc import Iterator

import numpy as np

from rag.config import LocalLLMConfig
from rag.errors import LLMError
from rag.llm.base import register
from rag.llm.models import converts, resolve_gguf
from rag.prompt import Prompt
from rag.records import Usage

log = logging.getLogger(__name__)
_YES = ("Yes", "yes", "YES", " Yes", " yes")
_NO = ("No", "no", "NO", " No", " no")
_MIN_BORROW = 32  # tokens the answer's cache must share beyond the checks' own to be worth copying
_CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
           "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


class LocalLLM:
    """llama.cpp in this process. One call at a time (the model and its cache are not re-entrant)."""

    name = "local"
    interruptible = True  # a stream may be closed and resumed from its text at the cost of its own tokens

    def __init__(self, config: LocalLLMConfig) -> None:
        # llama.cpp's OpenMP threads busy-wait; on a small shared machine that starves everything else.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = resolve_gguf(config.model, config.requantize)
        converted = converts(config.model, config.requantize)  # then answers and results name the converted file
        self.model = f"{config.model}.{config.requantize}" if converted else config.model
        self._config = config
        self._lock = threading.Lock()
        threads = config.threads or len(os.sched_getaffinity(0))
        self._open = lambda: Llama(model_path=str(path), n_ctx=config.n_ctx, n_threads=threads,
                                   n_threads_batch=threads, seed=config.seed, flash_attn=config.flash_attn,
                                   verbose=False)
        self._llm = self._open()
        self._side: Llama | None = None  # a second model and context (same GGUF file) for side prompts
        self._side_failed = False
        model = self._llm._model
        eos = self._llm.token_eos()
        self._eos_text = model.token_get_text(eos) if eos != -1 else ""
        template = self._llm.metadata.get("tokenizer.chat_template") or _CHATML
        self._format = Jinja2ChatFormatter(template=template, eos_token=self._eos_text, bos_token="")
        self._yes = self._first_tokens(_YES)
        self._no = self._first_tokens(_NO)

    def _first_tokens(self, words: tuple[str, ...]) -> list[int]:
        ids = {self._llm.tokenize(w.encode("utf-8"), add_bos=False, special=False)[0] for w in words}
        return sorted(ids)

    def close(self) -> None:
        """Free the model now rather than at interpreter exit (llama.cpp's finaliser is noisy then)."""
        with self._lock:
            self._llm.close()
            if self._side is not None:
                self._side.close()

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _render(self, prompt: Prompt) -> str:
        """The prompt rendered by the model's chat template, ready for the assistant's turn."""
        return self._format(messages=[m.to_dict() for m in prompt.messages]).prompt

    def tokens(self, prompt: Prompt, prefix: str = "", text: str | None = None) -> list[int]:
        """The prompt rendered by the model's chat template (ready for the assistant's turn; `text` when the caller
        rendered it already), plus `prefix`: the start of the assistant's answer when a stream is resumed."""
        text = (self._render(prompt) if text is None else text) + prefix
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        budget = prompt.max_tokens or self._config.max_tokens
        if len(tokens) + budget > self._config.n_ctx:
            raise LLMError(f"prompt of {len(tokens)} tokens plus {budget} to generate does not fit the local model's "
                           f"context ({self._config.n_ctx}); lower answer.context_tokens or raise llm.local.n_ctx")
        return tokens

    def stream(self, prompt: Prompt, prefix: str = "") -> Iterator[str | Usage]:
        """Text deltas of the answer (continuing `prefix`, which is not repeated), then the Usage."""
        cfg = self._config
        tokens = self.tokens(prompt, prefix)
        produced: list[str] = []
        kwargs: dict[str, object] = {}
        if prompt.json_mode:
            from llama_cpp import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_json_schema('{"type": "object"}', verbose=False)
        with self._lock:
            chunks = self._llm.create_completion(
                prompt=tokens, max_tokens=prompt.max_tokens or cfg.max_tokens, temperature=cfg.temperature,
                seed=cfg.seed, stream=True, stop=[self._eos_text] if self._eos_text else None, **kwargs)
            try:
                for chunk in chunks:
                    delta = chunk["choices"][0].get("text") or ""
                    if delta:
                        produced.append(delta)
                        yield delta
            except ValueError as e:
                raise LLMError(f"local model {self.model}: {e}") from e
            finally:
                chunks.close()  # type: ignore[attr-defined]
        yield Usage(len(tokens), self.count_tokens("".join(produced)))

    def p_yes(self, prompt: Prompt) -> float:
        """P("yes") against P("no") as the first word of the model's reply to a yes/no prompt, read from the
        logits after a forward pass over the documents the cache lacks, then over what follows them (always read
        again, in one batch, so that the same prompt gives the same P whatever the cache held). A `side` prompt (a
        claim over its cited block alone) runs in a second context, so the answer's documents stay cached for the
        answer."""
        text = self._render(prompt)
        tokens = self.tokens(prompt.with_max_tokens(1), text=text)
        with self._lock:
            if prompt.side and self._side is None and not self._side_failed:
                try:
                    self._side = self._open()
                except Exception as e:  # e.g. out of memory: check in the answer's context (slower, still right)
                    self._side_failed = True
                    log.warning("local model %s: cannot open a second context for checks (%s); using the "
                                "answer's", self.model, e)
            llm = self._side if prompt.side and self._side is not None else self._llm
            # The question after the documents is always read in one batch from the documents' end, even when the
            # cache holds it already: llama.cpp's arithmetic depends a little on how tokens are batched (one token
            # alone vs the same token in a batch moved P by up to ~0.04 on the 135M model), so P would otherwise
            # differ between a first check and the same check asked again (the eval's recheck of a shown answer).
            split = self._documents_end(prompt, text, tokens)
            n = min(_shared(llm, tokens), split)
            if llm is self._side and self._config.reuse_answer_cache:
                n = self._borrow(tokens, n, split)
            llm.n_tokens = n
            try:
                if n < split:
                    llm.eval(tokens[n:split])
                llm.eval(tokens[split:])
            except Exception as e:
                llm.n_tokens = 0  # the cache may be half-written: start clean next time
                raise LLMError(f"local model {self.model}: evaluating a yes/no prompt failed: {e}") from e
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
            yes = _logsumexp(logits[self._yes])
            no = _logsumexp(logits[self._no])
        return 1.0 / (1.0 + math.exp(no - yes))

    def _documents_end(self, prompt: Prompt, text: str, tokens: list[int]) -> int:
        """How many of `tokens` (the prompt rendered as `text`) render it up to the end of its documents (then the
        question, read in one batch); len(tokens) - 1 for a prompt without documents (its last token is read
        alone)."""
        last = len(tokens) - 1
        if not prompt.documents:
            return last
        at = text.rfind(prompt.documents)
        if at < 0:
            return last
        head = self._llm.tokenize(text[: at + len(prompt.documents)].encode("utf-8"), add_bos=False, special=True)
        return min(_shared_tokens(head, tokens), last)

    def _borrow(self, tokens: list[int], have: int, split: int) -> int:
        """Copy the answer context's cache into the checks' context when the answer's prompt shares a longer start
        with `tokens` than the checks' cache does (`have` tokens), e.g. a claim citing the first block: the system
        prompt and that document are then not read again. Returns how many of `tokens` the checks' context now
        holds: `have` when nothing was copied, 0 when a copy failed (its cache is then empty). The copy (llama.cpp's
        per-sequence state, ~35 MB for a 1,000-token prompt of the 1.5B model) takes tens of milliseconds; reading a
        200-token block takes over a second here."""
        main, side = self._llm, self._side
        assert side is not None
        m = min(_shared(main, tokens), split)
        if m < have + _MIN_BORROW:
            return have
        import llama_cpp

        src, dst = main._ctx.ctx, side._ctx.ctx
        memory = llama_cpp.llama_get_memory(dst)
        try:
            size = llama_cpp.llama_state_seq_get_size(src, 0)
            buf = (ctypes.c_uint8 * size)()
            got = llama_cpp.llama_state_seq_get_data(src, buf, size, 0)
            llama_cpp.llama_memory_clear(memory, True)
            side.n_tokens = 0
            if not got or not llama_cpp.llama_state_seq_set_data(dst, buf, got, 0):
                raise RuntimeError("llama_state_seq_set_data refused the answer's state")
            llama_cpp.llama_memory_seq_rm(memory, 0, m, -1)
        except Exception as e:  # the checks' cache is empty now: they read the whole prompt (slower, same answer)
            llama_cpp.llama_memory_clear(memory, True)
            side.n_tokens = 0
            log.warning("local model %s: could not copy the answer's cache for a check (%s)", self.model, e)
            return 0
        side.input_ids[:m] = main.input_ids[:m]
        side.n_tokens = m
        return m


def _shared(llm: object, tokens: list[int]) -> int:
    """How many of `tokens` open the prompt already cached in `llm` (a llama_cpp.Llama)."""
    return _shared_tokens(llm.input_ids[: llm.n_tokens], tokens)  # type: ignore[attr-defined]


def _shared_tokens(cached: object, tokens: list[int]) -> int:
    """The length of the common start of two token sequences."""
    n = 0
    for a, b in zip(cached, tokens, strict=False):  # type: ignore[call-overload]
        if a != b:
            break
        n += 1
    return n


def _logsumexp(values: np.ndarray) -> float:
    top = float(np.max(values))
    return top + math.log(float(np.sum(np.exp(values - top))))


@register("local")
def _factory(config: LocalLLMConfig, **_: object) -> LocalLLM:
    return LocalLLM(config)
