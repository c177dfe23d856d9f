"""Records that leave the ingestion stage: documents, their sections and chunks."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

# A tenant name: also a folder name under the server's uploads/, so no path separators, no dots in front.
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TENANT_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256 of bytes or UTF-8 text."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Section:
    """A run of extracted text that shares one provenance: a PDF page or a heading's body."""

    text: str
    start: int  # offset of this text in the document's extracted text
    section: str = ""  # heading path, e.g. "Install > On Linux"
    page: int | None = None  # 1-based physical page index (PDF only)
    page_label: str | None = None  # the label printed on the page, when the PDF has labels


@dataclass(frozen=True)
class Document:
    """One loaded file: its extracted text split into sections with provenance."""

    source: str  # path relative to the ingested root (the file name for a single file)
    kind: str  # pdf | markdown | html | text | docx | pptx | epub
    doc_hash: str  # SHA-256 of the file's bytes
    title: str
    sections: tuple[Section, ...]
    size: int = 0
    warnings: tuple[str, ...] = ()
    pages_without_text: tuple[int, ...] = ()  # physical pages (or slides) from which no text could be read

    @property
    def text(self) -> str:
        """The document's extracted text; section offsets index into it."""
        parts: list[str] = []
        pos = 0
        for s in self.sections:
            if s.start > pos:
                parts.append("\n" * (s.start - pos))
            parts.append(s.text)
            pos = s.start + len(s.text)
        return "".join(parts)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the embedder, with full provenance."""

    chunk_id: str
    source: str
    text: str
    start: int
    end: int
    text_hash: str
    doc_hash: str
    kind: str = "text"
    section: str = ""
    page: int | None = None
    page_label: str | None = None
    title: str = ""
    tenant: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    ordinal: int = 0  # position of the chunk in its document
