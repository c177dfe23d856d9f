"""Plain text: UTF-8 first, then the most likely legacy encoding; binary data is refused."""

from __future__ import annotations

import logging

from ingest.errors import LoaderError
from ingest.loaders.base import Parts

log = logging.getLogger(__name__)


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


def load_text(data: bytes, source: str) -> Parts:
    text = decode_text(data, source).replace("\r\n", "\n")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first[:200], [(text, "", None, None)], []
