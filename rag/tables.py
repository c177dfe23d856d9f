"""Tables in context blocks, as the model reads them: each row carries its column names.

A table in a document's text is a grid: a header line, then rows of cells (tab-separated in text files and
slides, `| a | b |` with a `|---|---|` line under the header in Markdown). A small model reading the bare grid
often takes a value from the wrong row or column ("Stable Diffusion" for the year 2020). In a context block each
row is written with its column names instead, one line per row: `Year: 2014; Model: GANs; Key Innovation: ...`.
Each such line is a sentence of its own (rag.text.split_sentences), so the checks that look near a claim's subject
(anchoring, the best passage unit) see one row at a time. (Written as list items, "- Year: ...", the rows led the
model to answer in list items itself, cut into fragments; dev, 2026-12-01.)

Only tables that show their header are rewritten, and only whole: a Markdown table (its separator line marks the
header) whose rows all have the header's number of cells; a tab-separated table whose rows all have as many cells
as its first line, when that line looks like column names (short labels, no number, no sentence or code
punctuation) and follows other text of the block or opens the document. A tab-separated table at the top of a
block that starts inside a document may begin with a data row (its header is in the chunk before), so it is left
as it is, as is anything inside a ``` fence. Cell text is never changed; only column names and separators are
added, and the header line is dropped (its names are in every row).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NUMBER = re.compile(r"^[\d.,%\s+\-–/x×]+$")
_MD_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
_NOT_A_NAME = re.compile(r"[.;:!?(){}\[\]=<>*/\\`\"]")  # sentence or code punctuation: not a column name
_FENCE = "```"
MAX_NAME_WORDS = 4


def _tab_cells(line: str) -> list[str] | None:
    if "\t" not in line:
        return None
    cells = [c.strip() for c in line.split("\t")]
    return cells if len(cells) >= 2 else None


def _pipe_cells(line: str) -> list[str] | None:
    """Cells of `a | b`, or of `| a | b |` (outer pipes on both ends); `| b` and `a |` have an empty first or
    last cell (an HTML table row whose first or last cell is empty)."""
    s = line.strip()
    if "|" not in s:
        return None
    if len(s) > 1 and s.startswith("|") and s.endswith("|"):
        s = s[1:-1]
    cells = [c.strip() for c in s.split("|")]
    return cells if len(cells) >= 2 else None


def _looks_like_names(cells: list[str]) -> bool:
    """Column names: short labels, none empty, none a bare number or range, none with sentence/code punctuation."""
    names = [c.rstrip(".…") for c in cells]  # a trailing ellipsis ("Use...") is a slide's label, not a sentence
    return all(c and not _NUMBER.match(c) and not _NOT_A_NAME.search(c) and len(c.split()) <= MAX_NAME_WORDS
               for c in names)


def _row(header: list[str], cells: list[str]) -> str:
    """One row with its column names; an empty cell is left out, a cell under an empty name stands alone."""
    named = (f"{name}: {cell}" if name else cell for name, cell in zip(header, cells, strict=True) if cell)
    return "; ".join(named)


def _table(lines: list[str], start: int, first_row: int, cells_of: Callable[[str], list[str] | None],
           header: list[str], named: bool) -> tuple[list[str], int]:
    """The lines a table from `start` (header) shows, and where it ends: its rows with their column names when
    `named` and every row is as wide as the header (a `|` inside a Markdown cell would shift the columns); else as
    they are (perhaps rows of a table whose header is in another chunk, or not a table)."""
    end = first_row
    while end < len(lines) and cells_of(lines[end]) is not None:
        end += 1
    rows = [cells_of(row) or [] for row in lines[first_row:end]]
    if named and rows and all(len(r) == len(header) for r in rows):
        return [_row(header, r) for r in rows], end
    return lines[start:end], end


def with_column_names(text: str, opens_document: bool = False) -> str:
    """`text` with every table row that has a known header written as `Column: cell; ...` (see the module)."""
    lines = text.split("\n")
    out: list[str] = []
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(_FENCE):
            fenced = not fenced
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        header = None if fenced else _pipe_cells(line)
        if header and _MD_SEPARATOR.match(nxt) and any(header):
            shown, i = _table(lines, i, i + 2, _pipe_cells, header, named=True)
            out += shown
            continue
        header = None if fenced else _tab_cells(line)
        if header and _tab_cells(nxt):
            known = any(s.strip() for s in out) or opens_document  # other text of the block precedes it
            shown, i = _table(lines, i, i + 1, _tab_cells, header, named=known and _looks_like_names(header))
            out += shown
            continue
        out.append(line)
        i += 1
    return "\n".join(out)
