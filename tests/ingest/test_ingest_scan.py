"""What an ingest run reads: symbolic links stay inside the folder given, odd names and odd files are refused with
a reason on one line, and a file that changes while it is read is not half-ingested."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest import scan as scan_mod
from ingest.config import IngestConfig
from ingest.errors import LoaderError
from ingest.pipeline import ingest_paths
from ingest.scan import printable, read_file, scan

OUTSIDE = "Outside secret: the vault code is 4711.\n"


def _ingest(root: Path, index: Path, embedder) -> tuple[dict[str, str], list[str]]:
    report = ingest_paths([root], index, IngestConfig(), embedder=embedder)
    return {f.source: f.error for f in report.failed}, sorted(report.added)


def _texts(index: Path) -> str:
    from ingest.collection import Collection

    coll = Collection(index)
    try:
        return "\n".join(r[0] for r in coll.store.db.execute("SELECT text FROM chunks"))
    finally:
        coll.close()


def test_links_leaving_the_folder_are_not_followed_and_links_inside_are(tmp_path: Path, hash_embedder) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(OUTSIDE)
    (outside / "more.md").write_text("# More\n\n" + OUTSIDE)
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "inner.txt").write_text("Inner file about puffins.\n")
    (root / "a.txt").write_text("A file about terns.\n")
    os.symlink(outside / "secret.txt", root / "leak.txt")  # absolute link out
    os.symlink("../outside", root / "leakdir")  # relative link to a folder out
    os.symlink("../../outside/secret.txt", root / "sub" / "up.txt")  # climbs out from a subfolder
    os.symlink("a.txt", root / "alias.txt")  # stays inside
    os.symlink("sub", root / "subalias")  # a folder inside (walked once: the loop cut keeps it to one copy)
    os.symlink("missing.txt", root / "broken.txt")
    os.symlink("self.txt", root / "self.txt")

    failed, added = _ingest(root, tmp_path / "index", hash_embedder)

    assert failed == {
        "leak.txt": "symbolic link to a file outside the folder being ingested; not followed",
        "leakdir": "symbolic link to a folder outside the folder being ingested; not followed",
        "sub/up.txt": "symbolic link to a file outside the folder being ingested; not followed",
        "broken.txt": "broken symbolic link (its target does not exist)",
        "self.txt": "symbolic link loop",
    }
    assert added == ["a.txt", "alias.txt", "sub/inner.txt"]
    assert "vault code" not in _texts(tmp_path / "index")


def test_a_folder_given_through_a_link_is_read_with_its_links_inside_it(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.txt").write_text("a")
    os.symlink("a.txt", real / "b.txt")
    os.symlink(real, tmp_path / "alias")
    files, skipped = scan([tmp_path / "alias"], (".txt",))
    assert [(f.source, f.refused) for f in files] == [("a.txt", ""), ("b.txt", "")] and not skipped


def test_names_that_cannot_be_stored_or_shown_on_one_line_are_refused(tmp_path: Path, hash_embedder) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "ok.txt").write_text("fine\n")
    (root / "two\nlines.txt").write_text("a name with a line break\n")
    bad = os.fsencode(str(root)) + b"/caf\xe9-\xff.txt"  # Latin-1 bytes: not UTF-8
    with open(bad, "wb") as fh:
        fh.write(b"a name that is not UTF-8\n")
    failed, added = _ingest(root, tmp_path / "index", hash_embedder)
    assert failed == {
        "two\\nlines.txt": "file name contains a line break or another control character; rename the file",
        "caf\\xe9-\\xff.txt": "file name is not valid UTF-8; rename the file",
    }
    assert added == ["ok.txt"]
    assert all("\n" not in s and s.isprintable() for s in failed)


def test_printable_escapes_what_a_terminal_or_log_line_cannot_hold() -> None:
    assert printable("a\nb\tc\x1b[31m\udcff") == "a\\nb\\tc\\x1b[31m\\xff"
    assert printable("café/ünï.md") == "café/ünï.md"


def test_a_file_truncated_while_it_is_read_fails_alone(tmp_path: Path, hash_embedder, monkeypatch) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_text("A file about gannets.\n")
    (root / "growing.txt").write_text("log line about kittiwakes\n" * 200_000)  # 5 MB: several read blocks
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("growing.txt"):
            os.truncate(root / "growing.txt", 1000)  # another program truncates it while we read it
        return data

    monkeypatch.setattr(scan_mod.os, "read", read)
    failed, added = _ingest(root, tmp_path / "index", hash_embedder)
    assert list(failed) == ["growing.txt"]
    assert failed["growing.txt"].startswith("file changed while it was read (5200000 bytes when opened, 1048576 read")
    assert added == ["a.txt"]


def test_read_file_refuses_specials_and_oversize_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # no writer: an open() without O_NONBLOCK would hang here
    with pytest.raises(LoaderError, match="not a regular file"):
        read_file(fifo, "pipe.txt", 1 << 20)
    sparse = tmp_path / "sparse.txt"
    with open(sparse, "wb") as fh:
        fh.truncate(2 * 2**30)  # 2 GiB, no blocks on disk
    with pytest.raises(LoaderError, match=r"file is 2048 MiB, over ingest.max_file_mb=64"):
        read_file(sparse, "sparse.txt", 64 * 2**20)
    (tmp_path / "d.pdf").mkdir()
    with pytest.raises(LoaderError, match="not a regular file"):
        read_file(tmp_path / "d.pdf", "d.pdf", 1 << 20)


def test_a_directory_named_like_a_pdf_is_walked_as_a_folder(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "x.pdf").mkdir(parents=True)
    (root / "x.pdf" / "inside.txt").write_text("inside")
    files, skipped = scan([root], (".pdf", ".txt"))
    assert [f.source for f in files] == ["x.pdf/inside.txt"] and not skipped
