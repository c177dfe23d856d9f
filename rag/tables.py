"""Tables in context blocks, as the model reads them: each row carries its column names.

A table in a document's text is a grid: a header line, then rows of cells (tab-separated in text files and
slides, `| a | b |` with a `|---|---|` line under the header in Markdown). A small model reading the bare grid
often takes a value from the wrong row or column ("Stable Diffusion" for the year 2020). In a context block each
row is written with its column names instead, one row per line: `Year: 2014; Model: GANs; Key Innovation: ...`.

Only what shows a header is rewritten: a Markdown table (its separator line marks the header), or a tab-separated
table whose first line follows other text of the block, or opens the document. A tab-separated table at the top
of a block that starts inside a document may begin with a data row (the header is in the chunk before), so it is
left as it is. Cell text is never changed; only column names and separators are added.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"^[\d.,%\s+\-–/x×]+$")
_MD_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _tab_cells(line: str) -> list[str] | None:
    if "\t" not in line:
        return None
    cells = [c.strip() for c in line.strip("\n").split("\t")]
    return cells if len(cells) >= 2 else None


def _pipe_cells(line: str) -> list[str] | None:
    s = line.strip()
    if "|" not in s:
        return None
    s = s.removeprefix("|").removesuffix("|")
    cells = [c.strip() for c in s.split("|")]
    return cells if len(cells) >= 2 else None


def _is_header(cells: list[str]) -> bool:
    """Column names: none empty, none a bare number or range."""
    return all(c and not _NUMBER.match(c) for c in cells)


def _row(header: list[str], cells: list[str]) -> str:
    pairs = [f"{name}: {cell}" for name, cell in zip(header, cells, strict=False) if cell]
    pairs += [cell for cell in cells[len(header):] if cell]  # cells beyond the header's columns stay as they are
    return "; ".join(pairs)


def with_column_names(text: str, opens_document: bool = False) -> str:
    """`text` with every table row that has a known header written as `Column: cell; ...` (see the module)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        header = _pipe_cells(line)
        if header and _MD_SEPARATOR.match(nxt) and _is_header(header):
            i += 2
            while i < len(lines) and (cells := _pipe_cells(lines[i])) is not None:
                out.append(_row(header, cells))
                i += 1
            continue
        header = _tab_cells(line)
        if header and _tab_cells(nxt):
            end = i + 1
            while end < len(lines) and _tab_cells(lines[end]) is not None:
                end += 1
            known = any(s.strip() for s in out) or opens_document  # other text of the block precedes it
            if known and _is_header(header):
                out += [_row(header, _tab_cells(row) or []) for row in lines[i + 1:end]]
            else:  # perhaps rows of a table whose header is in another chunk: as they are
                out += lines[i:end]
            i = end
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


__all__ = ["with_column_names"]
