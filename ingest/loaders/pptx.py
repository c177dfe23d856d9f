"""PowerPoint (.pptx): one section per slide, "Slide N: title", with N as the page (python-pptx).

A slide's text is its shapes' text in reading order (top to bottom, then left to right; groups opened), tables as
one line per row with cells joined by " | ", then the speaker notes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from ingest.errors import LoaderError
from ingest.loaders.base import Part, Parts
from ingest.loaders.zipped import open_zip


def load_pptx(data: bytes, source: str) -> Parts:
    from pptx import Presentation

    open_zip(data, source, "a .pptx file", required=("[Content_Types].xml", "ppt/presentation.xml"))
    try:
        deck = Presentation(io.BytesIO(data))
        meta_title = (deck.core_properties.title or "").strip()
        parts: list[Part] = []
        first_title = ""
        for number, slide in enumerate(deck.slides, start=1):
            title_shape = slide.shapes.title
            title = " ".join((title_shape.text_frame.text if title_shape is not None else "").split())
            first_title = first_title or title
            lines = [line for shape in _reading_order(slide.shapes) for line in shape_lines(shape)]
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                text = notes.text.strip() if notes is not None else ""
                if text:
                    lines.append(f"Notes: {text}")
            heading = f"Slide {number}: {title}" if title else f"Slide {number}"
            parts.append(("\n".join(lines), heading, number, None))
    except LoaderError:
        raise
    except Exception as e:  # python-pptx and lxml raise many types on damaged parts
        raise LoaderError(source, f"corrupt or unreadable .pptx ({type(e).__name__}: {e})") from e
    return (meta_title or first_title)[:200], parts, []


def _reading_order(shapes: Any) -> list[Any]:
    def key(shape: Any) -> tuple[int, int]:
        return (shape.top if shape.top is not None else 0, shape.left if shape.left is not None else 0)

    return sorted(shapes, key=key)


def shape_lines(shape: Any) -> Iterator[str]:
    """The text lines of one shape: paragraphs of a text frame, rows of a table, the shapes of a group."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        for inner in _reading_order(shape.shapes):
            yield from shape_lines(inner)
        return
    if getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            cells = [" ".join(cell.text.split()) for cell in row.cells if not cell.is_spanned]
            if any(cells):
                yield " | ".join(cells)
        return
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        for paragraph in shape.text_frame.paragraphs:
            text = " ".join(paragraph.text.split())
            if text:
                yield text
