"""HTML: the main text only (navigation, scripts and boilerplate dropped), sections by headings."""

from __future__ import annotations

import re

from ingest.errors import LoaderError
from ingest.loaders.base import Part, Parts

_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg",
         "template", "button", "select", "input", "object", "embed", "canvas", "dialog", "menu"]
_DROP_ROLES = re.compile(r"^(navigation|banner|contentinfo|search|menu|menubar|complementary)$")
_BOILERPLATE = re.compile(r"(^|[\s_-])(nav|navbar|menu|sidebar|breadcrumbs?|footer|cookie|skip-?link|toc)([\s_-]|$)", re.I)
_BLOCKS = ["p", "div", "li", "tr", "br", "pre", "table", "section", "article", "dd", "dt", "blockquote",
           "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "main", "figure", "figcaption", "caption"]
_HEAD_MARK = "\x1eH"


def load_html(data: bytes, source: str) -> Parts:
    from bs4 import BeautifulSoup

    if b"\x00" in data[:8192]:
        raise LoaderError(source, "binary data, not HTML (contains NUL bytes)")
    soup = BeautifulSoup(data, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": _DROP_ROLES}):
        tag.decompose()
    for tag in soup.find_all(attrs={"hidden": True}):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.attrs is None:
            continue
        marks = " ".join(tag.get("class") or []) + " " + str(tag.get("id") or "")
        if tag.name not in ("body", "html", "main", "article") and _BOILERPLATE.search(marks):
            tag.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.find("article") or soup.body or soup
    for h in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        h.insert_before(f"\n{_HEAD_MARK}{h.name[1]}\x1f")
    for cell in root.find_all(["td", "th"]):
        cell.append("\t")
    for block in root.find_all(_BLOCKS):
        block.append("\n")
    raw = root.get_text()
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
