"""What every loader shares: the shape a loader returns, reading a file's bytes, placing sections."""

from __future__ import annotations

from pathlib import Path

from ingest.errors import LoaderError
from ingest.records import Section

SECTION_GAP = 2  # characters between sections in a document's extracted text ("\n\n")

Part = tuple[str, str, int | None, str | None]  # (text, section heading path, page, page label)
Parts = tuple[str, list[Part], list[str]]  # (title, parts in reading order, warnings)


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


def place(parts: list[Part]) -> list[Section]:
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
