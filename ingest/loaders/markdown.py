"""Markdown: sections by headings (markdown-it), each carrying its heading path."""

from __future__ import annotations

from ingest.loaders.base import Part, Parts
from ingest.loaders.text import decode_text


def load_markdown(data: bytes, source: str) -> Parts:
    from markdown_it import MarkdownIt

    text = decode_text(data, source).replace("\r\n", "\n")
    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").parse(text)
    heads: list[tuple[int, int, str]] = []  # (line, level, heading text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            heads.append((tok.map[0], int(tok.tag[1]), tokens[i + 1].content.strip()))
    parts: list[Part] = []
    path: list[tuple[int, str]] = []
    bounds = [h[0] for h in heads] + [len(lines)]
    if not heads or heads[0][0] > 0:
        parts.append(("\n".join(lines[: bounds[0]]), "", None, None))
    for (line, level, title), end in zip(heads, bounds[1:], strict=True):
        path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
        parts.append(("\n".join(lines[line:end]), " > ".join(t for _, t in path), None, None))
    title = next((t for _, lv, t in heads if lv == 1), heads[0][2] if heads else "")
    return title, parts, []
