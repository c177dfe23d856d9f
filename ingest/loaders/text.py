"""Plain text: UTF-8 first, then the most likely legacy encoding; binary data is refused."""

from __future__ import annotations

import logging

from ingest.errors import LoaderError
from ingest.loaders.base import Parts

log = logging.getLogger(__name__)


def decode_text(data: bytes, source: str) -> str:
    """Decode bytes as text: UTF-8 first, then the most likely legacy encoding; binary data is refused."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        utf16 = _utf16_without_bom(data)
        if utf16 is None:
            raise LoaderError(source, "binary data, not text (contains NUL bytes)")
        text, encoding = utf16
        if _too_many_controls(text):
            raise LoaderError(source, "binary data, not text (too many control characters)")
        log.info("%s: decoded as %s without a byte-order mark", source, encoding)
        return text
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
    if _too_many_controls(text):
        raise LoaderError(source, "binary data, not text (too many control characters)")
    log.info("%s: decoded as %s", source, encoding)
    return text


def _too_many_controls(text: str) -> bool:
    controls = sum(1 for c in text[:20000] if ord(c) < 32 and c not in "\t\n\r\f")
    return controls > 0.01 * min(len(text), 20000)


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """(text, encoding) when the bytes are UTF-16 without a byte-order mark (Windows tools write such files): text
    in Latin script has a NUL in every other byte, and none in the bytes between."""
    sample = data[:8192]
    even, odd = sample[0::2], sample[1::2]
    if len(odd) < 2:
        return None
    for zeros, others, encoding in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if zeros.count(0) >= 0.7 * len(zeros) and others.count(0) <= 0.02 * len(others):
            try:
                return data[: len(data) // 2 * 2].decode(encoding), encoding
            except UnicodeDecodeError:
                return None
    return None


def load_text(data: bytes, source: str) -> Parts:
    text = decode_text(data, source).replace("\r\n", "\n")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first[:200], [(text, "", None, None)], []
