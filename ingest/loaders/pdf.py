"""PDF: one section per physical page (page labels kept); pages whose word spacing pypdf lost are re-read
with PDFium."""

from __future__ import annotations

import logging
import re

from ingest.errors import LoaderError
from ingest.loaders.base import Part, Parts
from ingest.loaders.ocr import OCR_SECTION, read_scanned_pages

log = logging.getLogger(__name__)
_WORD = re.compile(r"[^\W\d_]+")
_BROKEN_SPACING_SHARE = 0.03  # share of 20+ letter words above which a page's spacing is deemed lost


def long_word_share(text: str) -> float:
    """Share of words of 20+ letters: high when an extractor lost the spaces between words."""
    words = _WORD.findall(text)
    # Too little text to judge, unless it is long: a page whose every line lost its spaces has few "words".
    if len(words) < 20 and sum(map(len, words)) < 100:
        return 0.0
    return sum(1 for w in words if len(w) >= 20) / len(words)


def load_pdf(data: bytes, source: str) -> Parts:
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
    texts, by_ocr, ocr_warnings = read_scanned_pages(data, texts)  # scans: pages without a usable text layer
    warnings.extend(ocr_warnings)
    parts: list[Part] = []
    for i, text in enumerate(texts):
        label = labels[i] if i < len(labels) else None
        parts.append((text, OCR_SECTION if i in by_ocr else "", i + 1, label if label != str(i + 1) else None))
    title = str(meta_title).strip() or next((ln.strip() for t in texts for ln in t.splitlines() if ln.strip()), "")
    return title[:200], parts, warnings


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
