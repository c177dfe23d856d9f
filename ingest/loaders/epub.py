"""EPUB: the chapters in reading order (the spine), each read by the HTML loader (EbookLib for the container).

A chapter's sections are its headings; text before any heading takes the chapter's title from the table of
contents.
"""

from __future__ import annotations

import io
import posixpath
from typing import Any

from ingest.errors import LoaderError
from ingest.loaders.base import Part, Parts
from ingest.loaders.html import load_html
from ingest.loaders.zipped import open_zip


def load_epub(data: bytes, source: str) -> Parts:
    import ebooklib
    from ebooklib import epub

    open_zip(data, source, "an .epub file", required=("META-INF/container.xml",))
    try:
        book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": False})
        titles = toc_titles(book.toc)
        chapters: list[Any] = []
        for entry in book.spine:
            item = book.get_item_with_id(entry[0] if isinstance(entry, tuple) else entry)
            if item is not None and item.get_type() == ebooklib.ITEM_DOCUMENT and not isinstance(item, epub.EpubNav):
                chapters.append(item)
        meta = book.get_metadata("DC", "title")
        meta_title = str(meta[0][0]).strip() if meta and meta[0] and meta[0][0] else ""
    except LoaderError:
        raise
    except Exception as e:  # EbookLib and lxml raise many types on damaged books
        raise LoaderError(source, f"corrupt or unreadable .epub ({type(e).__name__}: {e})") from e
    parts: list[Part] = []
    warnings: list[str] = []
    for item in chapters:
        name = item.get_name()
        chapter = titles.get(name, "")
        try:
            _, chapter_parts, _ = load_html(item.get_content(), f"{source}:{name}")
        except LoaderError as e:  # one unreadable chapter does not lose the book
            warnings.append(f"chapter {name} skipped: {e.reason}")
            continue
        for n, (text, section, page, label) in enumerate(chapter_parts):
            # The HTML loader's first part is the text before any heading (its section is only the page's title);
            # later parts carry their heading path, placed under the chapter's title.
            if n == 0:
                section = chapter or section
            elif chapter and not section.startswith(chapter):
                section = f"{chapter} > {section}"
            parts.append((text, section or posixpath.basename(name), page, label))
    if not chapters:
        raise LoaderError(source, "no chapters: the EPUB's spine lists no readable documents")
    return meta_title[:200], parts, warnings


def toc_titles(toc: Any) -> dict[str, str]:
    """{chapter file: its title} from the table of contents (nested sections flattened; first title wins)."""
    out: dict[str, str] = {}
    stack = list(toc)[::-1]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple | list):
            head, children = (node[0], node[1]) if len(node) == 2 else (None, list(node))
            stack.extend(list(children)[::-1])
            node = head
        href = getattr(node, "href", None)
        title = getattr(node, "title", None)
        if href and title:
            out.setdefault(href.split("#")[0], " ".join(str(title).split()))
    return out
