"""ZIP containers (Word, PowerPoint, EPUB): checked before a parser opens them, so that a file that is not a ZIP, a
truncated one or a ZIP bomb fails with one clear line instead of a parser's traceback or an exhausted worker."""

from __future__ import annotations

import io
import zipfile

from ingest.errors import LoaderError

MAX_UNPACKED_MB = 256  # what all members may unpack to together
MAX_MEMBERS = 10_000
MAX_RATIO = 200  # unpacked / packed size of one member above which (and past 8 MiB) it is taken for a bomb


def open_zip(data: bytes, source: str, what: str, required: tuple[str, ...] = ()) -> zipfile.ZipFile:
    """The ZIP inside `data`, after checking that it is one, is complete, unpacks to a sane size and holds the
    members `required`; `what` names the format in messages ("a .docx file")."""
    if not data.startswith(b"PK"):
        raise LoaderError(source, f"not a ZIP container: {what} is a ZIP file and this one is not (corrupt, or "
                                  "another format under this extension)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise LoaderError(source, f"corrupt or truncated ZIP container ({e})") from e
    if len(members) > MAX_MEMBERS:
        raise LoaderError(source, f"ZIP container with {len(members)} members (the limit is {MAX_MEMBERS}): refused")
    total = sum(m.file_size for m in members)
    if total > MAX_UNPACKED_MB * 2**20:
        raise LoaderError(source, f"ZIP bomb refused: it would unpack to {total / 2**20:,.0f} MiB (the limit is "
                                  f"{MAX_UNPACKED_MB} MiB)")
    for m in members:
        if m.file_size > 8 * 2**20 and m.file_size > MAX_RATIO * max(1, m.compress_size):
            raise LoaderError(source, f"ZIP bomb refused: member {m.filename!r} unpacks {m.compress_size:,} bytes "
                                      f"to {m.file_size:,} (more than {MAX_RATIO} times)")
    names = {m.filename for m in members}
    missing = [r for r in required if r not in names]
    if missing:
        raise LoaderError(source, f"not {what}: the ZIP container lacks {', '.join(missing)}")
    return zf


def read_member(zf: zipfile.ZipFile, name: str, source: str) -> bytes:
    """One member's bytes; a damaged member (bad CRC, truncated data) is a LoaderError naming it."""
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, KeyError, EOFError, OSError, NotImplementedError, ValueError) as e:
        raise LoaderError(source, f"damaged ZIP member {name!r} ({e})") from e
