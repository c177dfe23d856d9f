"""Chunking by the embedder's own tokenizer, so no chunk is silently truncated when embedded."""

from __future__ import annotations

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
        self._splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
            tokenizer,
            chunk_size=config.chunk_size,
            chunk_overlap=config.chunk_overlap,
            separators=SEPARATORS,
            keep_separator="end",
            add_start_index=True,
            strip_whitespace=True,
        )

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.tokenize(text))

    def split(self, doc: Document, tenant: str | None = None, tags: tuple[str, ...] = ()) -> list[Chunk]:
        """Chunks of one document, never crossing a section (so page and heading stay exact)."""
        chunks: list[Chunk] = []
        for sec in doc.sections:
            for piece in self._splitter.create_documents([sec.text]):
                text = piece.page_content
                if not text.strip():
                    continue
                start = sec.start + int(piece.metadata.get("start_index", 0))
                text_hash = sha256_hex(text)
                ordinal = len(chunks)
                chunk_id = sha256_hex(f"{doc.source}\0{doc.doc_hash}\0{ordinal}\0{text_hash}")[:24]
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
