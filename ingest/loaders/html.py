"""HTML: the main text only (navigation, scripts and boilerplate dropped), sections by headings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ingest.errors import LoaderError
from ingest.loaders.base import Part, Parts

_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg",
         "template", "button", "select", "input", "object", "embed", "canvas", "dialog", "menu"]
_DROP_ROLES = re.compile(r"^(navigation|banner|contentinfo|search|menu|menubar|complementary)$")
_BOILERPLATE = re.compile(r"(^|[\s_-])(nav|navbar|menu|sidebar|breadcrumbs?|footer|cookie|skip-?link|toc)([\s_-]|$)", re.I)
_BLOCKS = ["p", "div", "li", "tr", "br", "pre", "table", "section", "article", "dd", "dt", "blockquote",
           "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "main", "figure", "figcaption", "caption"]
_HEAD_MARK = "\x1eH"
_DROP_SET = set(_DROP)


def load_html(data: bytes, source: str) -> Parts:
    from bs4 import BeautifulSoup

    if b"\x00" in data[:8192]:
        raise LoaderError(source, "binary data, not HTML (contains NUL bytes)")
    soup = BeautifulSoup(data, "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    # One pass to pick the main content, one to read it; boilerplate subtrees are skipped, never searched again
    # (a search per tag made 8,000 nested <div>s take 33 s).
    root = _main_content(soup)
    raw = _text(root)
    parts: list[Part] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []
    section = ""
    for line in raw.split("\n"):
        if line.startswith(_HEAD_MARK):
            level, _, rest = line[len(_HEAD_MARK):].partition("\x1f")
            parts.append(("\n".join(buf), section, None, None))
            heading = _squash(rest)
            path = [(lv, t) for lv, t in path if lv < int(level)] + [(int(level), heading)]
            section = " > ".join(t for _, t in path if t)
            buf = [heading]
            continue
        line = _squash(line)
        if line:
            buf.append(line)
    parts.append(("\n".join(buf), section, None, None))
    if not title and path:
        title = path[0][1]
    parts = [(t, s or title, p, lab) for t, s, p, lab in parts]
    return title, parts, []


def _squash(line: str) -> str:
    cells = [" ".join(c.split()) for c in line.split("\t")]
    return " | ".join(c for c in cells if c)


_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCK_SET = set(_BLOCKS)
_CELLS = {"td", "th"}
_KEEP_MARKED = {"body", "html", "main", "article"}


def _dropped(tag: Any) -> bool:
    """Navigation, scripts, hidden parts and boilerplate (by tag, ARIA role, or class/id words)."""
    if tag.name in _DROP_SET or tag.get("hidden") is not None:
        return True
    role = tag.get("role")
    if isinstance(role, str) and _DROP_ROLES.search(role):
        return True
    if tag.name in _KEEP_MARKED:
        return False
    classes = tag.get("class") or []
    marks = " ".join(classes if isinstance(classes, list) else [str(classes)]) + " " + str(tag.get("id") or "")
    return bool(_BOILERPLATE.search(marks))


def _tags(root: Any) -> Iterator[Any]:
    """The tags under `root` in document order, without the subtrees of dropped tags (iterative: no depth limit)."""
    from bs4 import Tag

    stack = [child for child in reversed(root.contents) if isinstance(child, Tag)]
    while stack:
        tag = stack.pop()
        if _dropped(tag):
            continue
        yield tag
        stack.extend(child for child in reversed(tag.contents) if isinstance(child, Tag))


def _main_content(soup: Any) -> Any:
    """The first <main>, else role=main, else the first <article>, else <body>, else the whole document."""
    first: dict[str, Any] = {}
    for tag in _tags(soup):
        if tag.name == "main":
            return tag
        key = "role" if tag.get("role") == "main" else tag.name
        if key in ("role", "article", "body"):
            first.setdefault(key, tag)
    return first.get("role") or first.get("article") or first.get("body") or soup


def _text(root: Any) -> str:
    """The text under `root` with a line break after each block, a tab after each table cell, and a marker
    before each heading; dropped subtrees are left out."""
    from bs4 import CData, NavigableString, Tag

    text_types = (NavigableString, CData)
    out: list[str] = []
    stack: list[Any] = list(reversed(root.contents))
    while stack:
        node = stack.pop()
        if type(node) is str:  # the closing text of a block or cell pushed below
            out.append(node)
        elif isinstance(node, Tag):
            if _dropped(node):
                continue
            closing = ("\t" if node.name in _CELLS else "") + ("\n" if node.name in _BLOCK_SET else "")
            if closing:
                stack.append(closing)
            stack.extend(reversed(node.contents))
            if node.name in _HEADINGS:
                out.append(f"\n{_HEAD_MARK}{node.name[1]}\x1f")
        elif type(node) in text_types:
            out.append(str(node))
    return "".join(out)
