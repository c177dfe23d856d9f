"""Loaders: turn one file into a Document (text sections with provenance), or fail with a clear reason."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from ingest.errors import LoaderError
from ingest.records import Document, Section, sha256_hex

log = logging.getLogger(__name__)

KINDS = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
}
SECTION_GAP = 2  # characters between sections in a document's extracted text ("\n\n")
_WORD = re.compile(r"[^\W\d_]+")
_BROKEN_SPACING_SHARE = 0.03  # share of 20+ letter words above which a page's spacing is deemed lost


def kind_of(path: Path) -> str | None:
    """The loader kind for a path's extension, or None when no loader reads it."""
    return KINDS.get(path.suffix.lower())


def load(path: Path, source: str, data: bytes | None = None) -> Document:
    """Load one file; raises LoaderError naming the file and the reason when it cannot be read."""
    kind = kind_of(path)
    if kind is None:
        raise LoaderError(source, f"unsupported file type {path.suffix!r}; supported: {', '.join(sorted(KINDS))}")
    if data is None:
        data = read_bytes(path, source)
    if not data.strip():
        raise LoaderError(source, "empty file (0 bytes of text)")
    loader: Callable[[bytes, str], tuple[str, list[Section], list[str]]] = _LOADERS[kind]
    title, sections, warnings = loader(data, source)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise LoaderError(source, "no extractable text")
    return Document(
        source=source,
        kind=kind,
        doc_hash=sha256_hex(data),
        title=title,
        sections=tuple(sections),
        size=len(data),
        warnings=tuple(warnings),
    )


def read_bytes(path: Path, source: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise LoaderError(source, "file vanished before it could be read") from e
    except PermissionError as e:
        raise LoaderError(source, "permission denied") from e
    except IsADirectoryError as e:
        raise LoaderError(source, "is a directory") from e
    except OSError as e:
        raise LoaderError(source, f"cannot read file: {e.strerror or e}") from e


def _place(parts: list[tuple[str, str, int | None, str | None]]) -> list[Section]:
    """Give each (text, section, page, label) its offset in the joined document text."""
    out: list[Section] = []
    pos = 0
    for text, section, page, label in parts:
        text = text.strip()
        if not text:
            continue
        out.append(Section(text=text, start=pos, section=section, page=page, page_label=label))
        pos += len(text) + SECTION_GAP
    return out


# --- plain text ---------------------------------------------------------------------------------


def decode_text(data: bytes, source: str) -> str:
    """Decode bytes as text: UTF-8 first, then the most likely legacy encoding; binary data is refused."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoaderError(source, "binary data, not text (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise LoaderError(source, "binary data, not text (no text encoding fits)")
    text, encoding = str(best), best.encoding
    # On short texts many encodings tie and the pick is arbitrary (Latin-1 "café" came back as cp1250 "trčs"
    # or Farsi): among the least chaotic candidates, prefer the usual Western legacy encodings.
    tied = [m for m in matches if m.chaos <= best.chaos]
    for western in ("cp1252", "latin_1"):
        if any(western in m.could_be_from_charset for m in tied):
            try:
                text, encoding = data.decode(western), western
                break
            except UnicodeDecodeError:
                continue
    controls = sum(1 for c in text[:20000] if ord(c) < 32 and c not in "\t\n\r\f")
    if controls > 0.01 * min(len(text), 20000):
        raise LoaderError(source, "binary data, not text (too many control characters)")
    log.info("%s: decoded as %s", source, encoding)
    return text


def _load_text(data: bytes, source: str) -> tuple[str, list[Section], list[str]]:
    text = decode_text(data, source).replace("\r\n", "\n")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first[:200], _place([(text, "", None, None)]), []


# --- Markdown -----------------------------------------------------------------------------------


def _load_markdown(data: bytes, source: str) -> tuple[str, list[Section], list[str]]:
    from markdown_it import MarkdownIt

    text = decode_text(data, source).replace("\r\n", "\n")
    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").parse(text)
    heads: list[tuple[int, int, str]] = []  # (line, level, heading text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            heads.append((tok.map[0], int(tok.tag[1]), tokens[i + 1].content.strip()))
    parts: list[tuple[str, str, int | None, str | None]] = []
    path: list[tuple[int, str]] = []
    bounds = [h[0] for h in heads] + [len(lines)]
    if not heads or heads[0][0] > 0:
        parts.append(("\n".join(lines[: bounds[0]]), "", None, None))
    for (line, level, title), end in zip(heads, bounds[1:], strict=True):
        path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
        parts.append(("\n".join(lines[line:end]), " > ".join(t for _, t in path), None, None))
    title = next((t for _, lv, t in heads if lv == 1), heads[0][2] if heads else "")
    return title, _place(parts), []


# --- HTML ---------------------------------------------------------------------------------------

_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg",
         "template", "button", "select", "input", "object", "embed", "canvas", "dialog", "menu"]
_DROP_ROLES = re.compile(r"^(navigation|banner|contentinfo|search|menu|menubar|complementary)$")
_BOILERPLATE = re.compile(r"(^|[\s_-])(nav|navbar|menu|sidebar|breadcrumbs?|footer|cookie|skip-?link|toc)([\s_-]|$)", re.I)
_BLOCKS = ["p", "div", "li", "tr", "br", "pre", "table", "section", "article", "dd", "dt", "blockquote",
           "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "main", "figure", "figcaption", "caption"]
_HEAD_MARK = "\x1eH"


def _load_html(data: bytes, source: str) -> tuple[str, list[Section], list[str]]:
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
    parts: list[tuple[str, str, int | None, str | None]] = []
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
    return title, _place(parts), []


def _squash(line: str) -> str:
    cells = [" ".join(c.split()) for c in line.split("\t")]
    return " | ".join(c for c in cells if c)


# --- PDF ----------------------------------------------------------------------------------------


def long_word_share(text: str) -> float:
    """Share of words of 20+ letters: high when an extractor lost the spaces between words."""
    words = _WORD.findall(text)
    # Too little text to judge, unless it is long: a page whose every line lost its spaces has few "words".
    if len(words) < 20 and sum(map(len, words)) < 100:
        return 0.0
    return sum(1 for w in words if len(w) >= 20) / len(words)


def _load_pdf(data: bytes, source: str) -> tuple[str, list[Section], list[str]]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    warnings: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as e:  # pypdf raises several types for unsupported crypto
                raise LoaderError(source, f"encrypted PDF that cannot be opened ({e})") from e
            if not ok:
                raise LoaderError(source, "encrypted PDF: a password is required")
        n_pages = len(reader.pages)
        labels = list(reader.page_labels) if n_pages else []
        texts = [reader.pages[i].extract_text() or "" for i in range(n_pages)]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoaderError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as e:
        raise LoaderError(source, f"corrupt or unreadable PDF ({type(e).__name__}: {e})") from e
    broken = [i for i, t in enumerate(texts) if long_word_share(t) > _BROKEN_SPACING_SHARE]
    if broken:
        recovered = _pdfium_pages(data, broken)
        fixed = 0
        for i, text in recovered.items():
            if long_word_share(text) < long_word_share(texts[i]):
                texts[i] = text
                fixed += 1
        msg = f"{len(broken)} page(s) lost word spacing in pypdf; {fixed} recovered with PDFium"
        log.info("%s: %s", source, msg)
        warnings.append(msg)
    parts = []
    for i, text in enumerate(texts):
        label = labels[i] if i < len(labels) else None
        parts.append((text, "", i + 1, label if label != str(i + 1) else None))
    title = str(meta_title).strip() or next((ln.strip() for t in texts for ln in t.splitlines() if ln.strip()), "")
    return title[:200], _place(parts), warnings


def _pdfium_pages(data: bytes, pages: list[int]) -> dict[int, str]:
    import pypdfium2 as pdfium

    out: dict[int, str] = {}
    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as e:  # PDFium failing on a page pypdf read is not fatal
        log.warning("PDFium cannot open the PDF: %s", e)
        return out
    try:
        for i in pages:
            page = pdf[i]
            textpage = page.get_textpage()
            out[i] = textpage.get_text_bounded().replace("\r\n", "\n")
            textpage.close()
            page.close()
    finally:
        pdf.close()
    return out


_LOADERS: dict[str, Callable[[bytes, str], tuple[str, list[Section], list[str]]]] = {
    "text": _load_text,
    "markdown": _load_markdown,
    "html": _load_html,
    "pdf": _load_pdf,
}
