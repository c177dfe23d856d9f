"""Loaders: turn one file into a Document (text sections with provenance), or fail with a clear reason.

One module per format; each exposes `load_<kind>(data, source) -> (title, parts, warnings)`. To add a format,
write the module and register its extensions in KINDS and its function in LOADERS. A loader that can hand on its
leading parts while it still reads the rest (big PDFs) takes an `on_part` callback too, and is listed in STREAMING.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest.errors import LoaderError
from ingest.loaders.base import Part, Parts, place, read_bytes
from ingest.loaders.docx import load_docx
from ingest.loaders.epub import load_epub
from ingest.loaders.html import load_html
from ingest.loaders.markdown import load_markdown
from ingest.loaders.pdf import load_pdf
from ingest.loaders.pptx import load_pptx
from ingest.loaders.text import decode_text, load_text
from ingest.records import Document, sha256_hex

KINDS = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".docx": "docx",
    ".pptx": "pptx",
    ".epub": "epub",
}
LOADERS: dict[str, Callable[[bytes, str], Parts]] = {
    "text": load_text,
    "markdown": load_markdown,
    "html": load_html,
    "pdf": load_pdf,
    "docx": load_docx,
    "pptx": load_pptx,
    "epub": load_epub,
}

# Loaders that call `on_part` with each leading part, in order, once nothing later can change it.
STREAMING: dict[str, Callable[[bytes, str, Callable[[Part], None]], Parts]] = {"pdf": load_pdf}


def kind_of(path: Path) -> str | None:
    """The loader kind for a path's extension, or None when no loader reads it."""
    return KINDS.get(path.suffix.lower())


def load(path: Path, source: str, data: bytes | None = None,
         on_part: Callable[[Part], None] | None = None) -> Document:
    """Load one file; raises LoaderError naming the file and the reason when it cannot be read. `on_part`: called
    with leading parts (text, section, page, label) as soon as they are final, by the loaders in STREAMING; the
    Document's sections are those parts, stripped, followed by the rest."""
    kind = kind_of(path)
    if kind is None:
        raise LoaderError(source, f"unsupported file type {path.suffix!r}; supported: {', '.join(sorted(KINDS))}")
    if data is None:
        data = read_bytes(path, source)
    if not data.strip():
        raise LoaderError(source, "empty file (0 bytes of text)")
    if on_part is not None and kind in STREAMING:
        title, parts, warnings = STREAMING[kind](data, source, on_part)
    else:
        title, parts, warnings = LOADERS[kind](data, source)
    sections = [s for s in place(parts) if s.text.strip()]
    # Pages (PDF) and slides that gave no text, e.g. scans where OCR was not possible: reported, not hidden.
    with_text = {s.page for s in sections}
    textless = tuple(sorted({p for _, _, p, _ in parts if p is not None and p not in with_text}))
    if not sections:
        why = f" ({'; '.join(warnings)})" if warnings else ""
        raise LoaderError(source, f"no extractable text{why}")
    return Document(source=source, kind=kind, doc_hash=sha256_hex(data), title=title, sections=tuple(sections),
                    size=len(data), warnings=tuple(warnings), pages_without_text=textless)


__all__ = ["KINDS", "LOADERS", "STREAMING", "decode_text", "kind_of", "load", "read_bytes"]
