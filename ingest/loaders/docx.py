"""Word (.docx): paragraphs and tables in reading order, sections by headings (python-docx).

Headings ("Heading 1".."Heading 9", and "Title") open sections whose path is the chain of headings above them, as
in Markdown; a table becomes one line per row with its cells joined by " | ".
"""

from __future__ import annotations

import io
import re
from typing import Any

from ingest.errors import LoaderError
from ingest.loaders.base import Part, Parts
from ingest.loaders.zipped import open_zip

_HEADING = re.compile(r"^(?:heading|berschrift|titre|título|titolo)\s*(\d)$", re.IGNORECASE)


def load_docx(data: bytes, source: str) -> Parts:
    import docx
    from docx.table import Table

    open_zip(data, source, "a .docx file", required=("[Content_Types].xml", "word/document.xml"))
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
        meta_title = (document.core_properties.title or "").strip()
        parts: list[Part] = []
        path: list[tuple[int, str]] = []
        buf: list[str] = []
        section = ""
        for block in blocks:
            if isinstance(block, Table):
                buf.extend(table_rows(block))
                continue
            text = block.text.strip()
            level = heading_level(block)
            if level is None or not text:
                if text:
                    buf.append(text)
                continue
            parts.append(("\n".join(buf), section, None, None))
            path = [(lv, t) for lv, t in path if lv < level] + [(level, " ".join(text.split()))]
            section = " > ".join(t for _, t in path)
            buf = [text]
        parts.append(("\n".join(buf), section, None, None))
    except LoaderError:
        raise
    except Exception as e:  # python-docx and lxml raise many types on damaged parts
        raise LoaderError(source, f"corrupt or unreadable .docx ({type(e).__name__}: {e})") from e
    title = meta_title or next((t for lv, t in path if lv <= 1), "") or next((s for _, s, _, _ in parts if s), "")
    return title[:200], parts, []


def heading_level(paragraph: Any) -> int | None:
    """0 for the Title style, 1-9 for Heading N (also by style id, which localised Word keeps), else None."""
    style = paragraph.style
    if style is None:
        return None
    for name in (style.name or "", style.style_id or ""):
        if name.lower() == "title":
            return 0
        m = _HEADING.match(name.replace("Heading", "Heading ").strip())
        if m:
            return int(m.group(1))
    return None


def table_rows(table: Any) -> list[str]:
    """Each row as "cell | cell"; a merged cell is written once; nested tables follow their cell's row."""
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        nested: list[str] = []
        for cell in row.cells:
            if id(cell._tc) in seen:  # a horizontally merged cell is returned once per grid column
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(p.text.strip() for p in cell.paragraphs if p.text.strip()))
            for inner in cell.tables:
                nested.extend(table_rows(inner))
        if any(cells):
            rows.append(" | ".join(" ".join(c.split()) for c in cells))
        rows.extend(nested)
    return rows
