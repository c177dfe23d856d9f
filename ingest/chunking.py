"""Chunking by the embedder's own tokenizer, so no chunk is silently truncated when embedded."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ingest.config import ConfigError, IngestConfig
from ingest.records import Chunk, Document, sha256_hex

SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


class Chunker:
    """Splits each section of a document into chunks of at most `chunk_size` word pieces."""

    def __init__(self, tokenizer: Any, config: IngestConfig, max_tokens: int) -> None:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        # [CLS] and [SEP] take two of the model's positions.
        if config.chunk_size > max_tokens - 2:
            raise ConfigError(
                f"ingest.chunk_size {config.chunk_size} exceeds what the embedder reads "
                f"({max_tokens - 2} word pieces); choose a value <= {max_tokens - 2}"
            )
        self._tokenizer = tokenizer
        self._overlap = config.chunk_overlap
        self._backend = _private_backend(tokenizer)
        # The splitter measures every word and sentence, most of them several times: memoise short pieces.
        self._count_short = functools.lru_cache(maxsize=1 << 16)(self._count)
        self._splitter = RecursiveCharacterTextSplitter(
            length_function=self.count_tokens,
            chunk_size=config.chunk_size,
            chunk_overlap=config.chunk_overlap,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
        )

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` (no special tokens), as the embedder's tokenizer counts them."""
        return self._count_short(text) if len(text) <= 256 else self._count(text)

    def _count(self, text: str) -> int:
        if self._backend is not None:
            return len(self._backend.encode(text, add_special_tokens=False).ids)
        return len(self._tokenizer.tokenize(text))

    def _next_start_floor(self, text: str) -> int:
        """Where, at the earliest, the chunk after `text` can start within it: the overlap is at most
        chunk_overlap word pieces, so not before the (overlap+1)-th last one. Keeps repeated text in place."""
        if self._backend is None:
            return 1
        offsets = self._backend.encode(text, add_special_tokens=False).offsets
        if len(offsets) <= self._overlap:
            return 1
        return offsets[len(offsets) - self._overlap - 1][0] + 1

    def texts(self, section_text: str) -> list[str]:
        """The chunk texts of one section, as split() makes them (a section's text is stripped)."""
        return [t for t in self._splitter.split_text(section_text.strip()) if t.strip()]

    def split(self, doc: Document, tenant: str | None = None, tags: tuple[str, ...] = (),
              ahead: Callable[[list[str]], None] | None = None, every: int = 256, sent: int = 0) -> list[Chunk]:
        """Chunks of one document, never crossing a section (so page and heading stay exact). `ahead`, if given, is
        called with the texts of each `every` new chunks while the rest are still being split, after the first
        `sent` (whose texts the caller already sent ahead)."""
        chunks: list[Chunk] = []
        for sec in doc.sections:
            if ahead is not None and len(chunks) - sent >= every:
                ahead([c.text for c in chunks[sent:]])
                sent = len(chunks)
            prev, prev_text = -1, ""
            for text in self.texts(sec.text):
                # Each piece is a substring of the section, in order. The splitter's own start_index
                # is unusable here: it steps back by chunk_overlap *characters* while the overlap is
                # counted in word pieces, so it returns -1 or a later repeat of the text.
                found = sec.text.find(text, prev + 1)
                if found < 0:
                    raise ValueError(f"{doc.source}: chunk not found in its section (splitter changed the text?)")
                if prev_text and sec.text.find(text, found + 1) >= 0:  # repeated text: which copy is it?
                    later = sec.text.find(text, prev + self._next_start_floor(prev_text))
                    found = later if later >= 0 else found
                prev, prev_text = found, text
                start = sec.start + found
                text_hash = sha256_hex(text)
                ordinal = len(chunks)
                # The tenant is part of the identity (two tenants may hold the same file); ids of documents
                # without a tenant are unchanged from earlier versions.
                scope = "" if tenant is None else f"{tenant}\0"
                chunk_id = sha256_hex(f"{scope}{doc.source}\0{doc.doc_hash}\0{ordinal}\0{text_hash}")[:24]
                chunks.append(
                    Chunk(
                        chunk_id=chunk_id,
                        source=doc.source,
                        text=text,
                        start=start,
                        end=start + len(text),
                        text_hash=text_hash,
                        doc_hash=doc.doc_hash,
                        kind=doc.kind,
                        section=sec.section,
                        page=sec.page,
                        page_label=sec.page_label,
                        title=doc.title,
                        tenant=tenant,
                        tags=tags,
                        ordinal=ordinal,
                    )
                )
        return chunks


def _private_backend(tokenizer: Any) -> Any:
    """A copy of a fast tokenizer's Rust backend with truncation and padding off, or None.

    Calling the Rust tokenizer directly skips transformers' per-call overhead, but the shared backend carries
    the truncation and padding that the last encode() set (e.g. 256 and "pad to 128"), which would cap or
    inflate counts: so count with a private copy.
    """
    from tokenizers import Tokenizer

    backend = tokenizer if isinstance(tokenizer, Tokenizer) else getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy
