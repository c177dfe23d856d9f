"""OCR of PDF pages that have no usable text layer (scans): PDFium renders the page, Tesseract reads it.

Tesseract is Debian's `tesseract-ocr` (with `tesseract-ocr-eng`), run as a subprocess on the rendered page; where it
is not installed, the pages are named in a warning instead of being left silently empty.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import string
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

OCR_SECTION = "OCR"  # the section of a page read by OCR: shown with its hits and citations, filterable (section=OCR)
LANGUAGES = "eng"
DPI = 300
MAX_PIXELS = 40_000_000  # a hostile page size is rendered smaller rather than exhausting the worker's memory
PAGE_TIMEOUT_S = 30.0
# OCR of one file stops after this long (the pages left are named in a warning), so that a long scanned book still
# ingests its first pages within the worker's limit (ingest.load_timeout_s, 60 s by default).
BUDGET_S = 40.0
INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng"


def tesseract() -> str | None:
    """The tesseract command, or None when it is not installed."""
    return shutil.which("tesseract")


# Punctuation a real text layer is full of on some pages: dot leaders of a table of contents or an index, rules,
# bullets, dashes, quotes. It never makes a page look like garbage.
_TEXT_PUNCTUATION = frozenset(string.punctuation) | frozenset("…·•–—‘’“”«»§¶°±×÷")


def needs_ocr(text: str) -> bool:
    """True for a page whose text layer is missing or garbage: hardly any letters or digits, or many characters
    that no real text layer gives (a font without a Unicode map yields control characters, private-use glyphs,
    replacement characters or stray symbols). Dot leaders and other punctuation do not count as garbage, so a
    table of contents or an index keeps its text layer."""
    # Counted per distinct character (a page has a few hundred): a loop over every character cost 1.3 ms a page.
    visible = good = bad = odd = 0
    for c, n in Counter(text).items():
        if c.isspace():
            continue
        visible += n
        if c.isalnum():
            good += n
            continue
        if c == "\ufffd" or "\ue000" <= c <= "\uf8ff" or ord(c) < 32:
            bad += n
        if c not in _TEXT_PUNCTUATION:
            odd += n
    if good < 16:  # nothing, or a page number
        return True
    return bad > 0.1 * visible or odd > 0.3 * visible


def ocr_pages(data: bytes, pages: Sequence[int], command: str, budget_s: float = BUDGET_S) -> dict[int, str]:
    """{0-based page index: text} for `pages` of the PDF in `data`, in order until `budget_s` is spent; a page that
    fails is logged and left out."""
    import time

    import pypdfium2 as pdfium

    out: dict[int, str] = {}
    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as e:  # PDFium failing where pypdf read the file is not fatal: the pages stay without text
        log.warning("PDFium cannot open the PDF to render it for OCR: %s", e)
        return out
    deadline = time.monotonic() + budget_s
    try:
        for i in pages:
            if time.monotonic() > deadline:
                break
            page = pdf[i]
            try:
                width, height = page.get_size()
                scale = DPI / 72
                if width * height * scale * scale > MAX_PIXELS:
                    scale = (MAX_PIXELS / max(1.0, width * height)) ** 0.5
                image = page.render(scale=scale, grayscale=True).to_pil()
            finally:
                page.close()
            buf = io.BytesIO()
            image.save(buf, format="PPM")  # PGM for a grayscale image: no compression to wait for
            text = run_tesseract(buf.getvalue(), command, max(1.0, min(PAGE_TIMEOUT_S, deadline - time.monotonic())))
            out[i] = text if text is not None else ""
    finally:
        pdf.close()
    return out


def run_tesseract(image: bytes, command: str, timeout_s: float = PAGE_TIMEOUT_S) -> str | None:
    """The text Tesseract reads in an image (PNM/PNG bytes), or None when it fails."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one thread: the worker is one of several on a small machine
    try:
        done = subprocess.run([command, "stdin", "stdout", "-l", LANGUAGES, "--psm", "3"], input=image,
                              capture_output=True, timeout=timeout_s, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("tesseract failed: %s", e)
        return None
    if done.returncode != 0:
        log.warning("tesseract exited with %d: %s", done.returncode, done.stderr.decode("utf-8", "replace")[-300:])
        return None
    return done.stdout.decode("utf-8", "replace").replace("\f", "\n")


def page_list(pages: Iterable[int]) -> str:
    """1-based page numbers as ranges: "1-3, 7"."""
    nums = sorted(set(pages))
    spans: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        spans.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(spans)


def read_scanned_pages(data: bytes, texts: list[str]) -> tuple[list[str], set[int], list[str]]:
    """OCR the pages of `texts` (one per page, from the text layer) that need it: (texts with the OCR'd pages
    filled in, 0-based indices of the pages read by OCR, warnings naming the pages still without text)."""
    todo = [i for i, t in enumerate(texts) if needs_ocr(t)]
    if not todo:
        return texts, set(), []
    command = tesseract()
    if command is None:
        blank = [i + 1 for i in todo if not texts[i].strip()]
        garbled = [i + 1 for i in todo if texts[i].strip()]
        msg = []
        if blank:
            msg.append(f"page(s) {page_list(blank)} have no text layer")
        if garbled:
            msg.append(f"page(s) {page_list(garbled)} have only unreadable text")
        return texts, set(), [f"{' and '.join(msg)} and were not OCR'd: Tesseract is not installed ({INSTALL_HINT})"]
    out = list(texts)
    done: set[int] = set()
    read = ocr_pages(data, todo, command)
    for i, text in read.items():
        if sum(c.isalnum() for c in text) > sum(c.isalnum() for c in texts[i]):
            out[i] = text
            done.add(i)
    warnings = []
    if done:
        log.info("read %d page(s) by OCR: %s", len(done), page_list(i + 1 for i in done))
    late = [i + 1 for i in todo if i not in read]
    if late:
        warnings.append(f"page(s) {page_list(late)} need OCR and were not read: OCR stopped after {BUDGET_S:g} s "
                        "for this file")
    empty = [i + 1 for i in todo if i in read and i not in done and not texts[i].strip()]
    if empty:
        warnings.append(f"page(s) {page_list(empty)} have no text, even by OCR")
    return out, done, warnings
