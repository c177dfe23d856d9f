"""Bad input campaign: 30+ kinds of hostile, broken or odd files in one folder, ingested once by the real CLI.
Each bad file is exactly one line naming the file and the reason; every other file is ingested; exit status 2.

The CLI runs in a child whose capabilities cannot override file permissions (tests run as root), with one fault
hook: a file is truncated by "another program" while the ingest reads it.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import hostile
import pytest

from ingest import pipeline
from ingest.config import IngestConfig
from ingest.pipeline import ingest_paths
from rag.api import open_pipeline
from rag.config import Config

pytestmark = [pytest.mark.slow, pytest.mark.campaign]

LATIN1_TEXT = "Le café de la gare sert une bouillabaisse très épicée. Où est la crème brûlée?\n"
HUGE_HEAD, HUGE_TAIL = "Zanzibar sentinel opens the long line. ", "Quokka sentinel closes the long line."
UTF16_TEXT = "Die Kormorane trocknen ihre Flügel auf den Pfählen im Hafen.\n"
NEWLINE_NAME = "line\nbreak.txt"
LATIN1_NAME = b"caf\xe9-\xff.txt"  # not UTF-8

# Bad files as the report names them, and what the reason must say (matched case-insensitively).
EXPECTED_FAILURES = {
    "corrupt.pdf": r"^corrupt or unreadable PDF",
    "encrypted.pdf": r"^encrypted PDF: a password is required$",
    "empty.txt": r"^empty file",
    "empty.pdf": r"^empty file",
    "whitespace.md": r"^empty file",
    "binary.txt": r"^binary data, not text \(contains NUL bytes\)$",
    "garbage.txt": r"^binary data, not text \(no text encoding fits\)$",
    "gzip.txt": r"^binary data",
    "png.md": r"^binary data",
    "nul.html": r"^binary data, not HTML",
    "loop.txt": r"^symbolic link loop$",
    "broken-link.txt": r"^broken symbolic link \(its target does not exist\)$",
    "outside-link.txt": r"^symbolic link to a file outside the folder being ingested; not followed$",
    "outside-dir": r"^symbolic link to a folder outside the folder being ingested; not followed$",
    "pipe.txt": r"^not a regular file \(a FIFO, socket or device\)$",
    "locked.txt": r"^permission denied$",
    "locked-dir": r"^cannot list directory: Permission denied$",
    "nested-brackets.pdf": r"^crashed: RecursionError: maximum recursion depth exceeded",
    "flate-bomb.pdf": r"^crashed: LimitReachedError: Limit reached while decompressing",
    "zip-archive.pdf": r"^corrupt or unreadable PDF",
    "targz-archive.pdf": r"^corrupt or unreadable PDF",
    "zero-pages.pdf": r"^no extractable text$",
    "sparse-2gb.txt": r"^file is 2048 MiB, over ingest.max_file_mb=64$",
    "line\\nbreak.txt": r"^file name contains a line break or another control character; rename the file$",
    "caf\\xe9-\\xff.txt": r"^file name is not valid UTF-8; rename the file$",
    "truncated-while-read.txt": r"^file changed while it was read \(\d+ bytes when opened, \d+ read, \d+ now\)",
}
# Odd but legitimate files: ingested whole.
EXPECTED_ADDED = sorted([
    "good.md", "report.pdf", "latin1.txt", "huge-line.txt", "scripts.html", "javascript.pdf", "broken-xref.pdf",
    "deep-nesting.html", "one-line-10mb.html", "one-line-5mb.txt", "headings-100k.md", "utf16-no-bom.txt",
    "x.pdf/inside.txt", "inside-link.txt",
])
EXPECTED_SKIPPED = [{"source": "notes.odt", "error": "skipped: unsupported file type '.odt'"}]

# The CLI, run with one fault: whoever reads truncated-while-read.txt sees it cut to half of each block read.
TRUNCATING_CLI = """
import os, sys
real_read = os.read
def read(fd, n):
    data = real_read(fd, n)
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return data
    if path.endswith("/truncated-while-read.txt") and data:
        os.truncate(path, len(data) // 2)
    return data
os.read = read
from rag.cli import main
sys.argv = ["rag", *sys.argv[1:]]
main()
"""

SCRIPT_HEAVY_HTML = """<html><head><title>Quarterly walrus report</title>
<script src="analytics.js"></script>
<script>window.dataLayer = ["TRACKINGJUNK"]; function f() { return "JSJUNK"; }</script>
<style>.banner { display: none } /* CSSJUNK */</style></head>
<body>
<div class="skip-link"><a href="#main">SKIPJUNK Skip to content</a></div>
<nav class="navbar"><ul><li>NAVJUNK Home</li><li>NAVJUNK Products</li><li>NAVJUNK Contact</li></ul></nav>
<div role="banner">BANNERJUNK Big sale!</div>
<div class="breadcrumbs">CRUMBJUNK Home / Reports</div>
<main id="main">
  <h1>Walrus census</h1>
  <p>The census counted 412 walruses on the northern ice shelf this quarter.</p>
  <script>document.write("INLINEJUNK")</script>
  <noscript>NOSCRIPTJUNK enable javascript</noscript>
  <h2>Method</h2>
  <p>Observers used drones at dawn to avoid disturbing the herd.</p>
</main>
<aside class="sidebar">SIDEBARJUNK related reports</aside>
<div id="cookie-consent">COOKIEJUNK accept all cookies</div>
<footer>FOOTERJUNK (c) 2024 Walrus Society</footer>
<script>trackPageView("FOOTSCRIPTJUNK")</script>
</body></html>
"""


def _drop_file_permission_override() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set.

    Tests run as root, and root reads a chmod 000 file anyway; without these two capabilities a root process
    is held to the file's permission bits like anyone else, so chmod 000 really makes the file unreadable.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _require_permission_bits_to_hold(path: Path) -> None:
    """Fail (never skip): without a way to make a file unreadable, the permission case would go untested."""
    try:
        probe = subprocess.run(["cat", str(path)], preexec_fn=_drop_file_permission_override, capture_output=True,
                               check=False)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.fail(f"cannot start a process without CAP_DAC_OVERRIDE here ({e}); the unreadable-file cases need it")
    if probe.returncode == 0:
        pytest.fail("a chmod 000 file stayed readable for a process without CAP_DAC_OVERRIDE; "
                    "the unreadable-file cases cannot be tested in this environment")


def _run_cli(args: list[str | Path], rag_cli, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", TRUNCATING_CLI, *map(str, args)], cwd=rag_cli.cwd, env=rag_cli.env,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          preexec_fn=_drop_file_permission_override)


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory, make_pdf: Callable[..., Path]) -> Path:
    base = tmp_path_factory.mktemp("bad")
    root = base / "docs"
    root.mkdir()
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDESECRET the vault code is 4711\n")
    rnd = random.Random(7)
    # -- odd but legitimate
    (root / "good.md").write_text("# Penguins\n\nEmperor penguins huddle together to survive the winter.\n")
    make_pdf(root / "report.pdf", ["Page one mentions the glacier.", "Page two mentions the fjord."])
    (root / "latin1.txt").write_bytes(LATIN1_TEXT.encode("latin-1"))
    (root / "huge-line.txt").write_text(HUGE_HEAD + "lorem ipsum dolor sit amet consectetur " * 65_000 + HUGE_TAIL)
    (root / "scripts.html").write_text(SCRIPT_HEAVY_HTML)
    (root / "javascript.pdf").write_bytes(hostile.javascript_pdf("The pelican ledger lists nine pelicans."))
    (root / "broken-xref.pdf").write_bytes(hostile.broken_xref_pdf("The cormorant survey survived a broken xref."))
    (root / "deep-nesting.html").write_text(hostile.deep_html(8_000, "The heron sits at the bottom of 8000 divs."))
    (root / "one-line-10mb.html").write_text("<html><body><p>" + "walrus census data point " * 400_000 + "</p></body></html>")
    (root / "one-line-5mb.txt").write_text("Gannet opens. " + "lorem ipsum dolor sit amet consectetur " * 130_000)
    (root / "headings-100k.md").write_text("# Steps\n\n" + "## Step\n\nDo it.\n\n" * 100_000)
    (root / "utf16-no-bom.txt").write_bytes(UTF16_TEXT.encode("utf-16-le"))
    (root / "x.pdf").mkdir()  # a folder with a document's name: walked like any folder
    (root / "x.pdf" / "inside.txt").write_text("The folder named x.pdf holds this note about grebes.\n")
    os.symlink("good.md", root / "inside-link.txt")
    # -- bad
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog" + rnd.randbytes(4000))
    make_pdf(root / "encrypted.pdf", ["the secret walrus plan"], user_password="hunter2")
    (root / "empty.txt").write_bytes(b"")
    (root / "empty.pdf").write_bytes(b"")
    (root / "whitespace.md").write_text("  \n\t\n   \n")
    (root / "binary.txt").write_bytes(rnd.randbytes(2048) + b"\x00\x01\x02" + rnd.randbytes(2048))
    (root / "garbage.txt").write_bytes(rnd.randbytes(6000).replace(b"\x00", b"\x01"))
    import gzip

    (root / "gzip.txt").write_bytes(gzip.compress(b"compressed text " * 200))
    (root / "png.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rnd.randbytes(3000))
    (root / "nul.html").write_bytes(b"<html><body>\x00\x00<p>hidden</p></body></html>")
    os.symlink("loop.txt", root / "loop.txt")  # a link to itself: ELOOP on open
    os.symlink("missing.txt", root / "broken-link.txt")
    os.symlink(outside / "secret.txt", root / "outside-link.txt")
    os.symlink(outside, root / "outside-dir")
    os.mkfifo(root / "pipe.txt")  # reading a FIFO with no writer would block forever
    (root / "locked.txt").write_text("nobody may read this")
    (root / "locked.txt").chmod(0)
    (root / "locked-dir").mkdir()
    (root / "locked-dir" / "hidden.txt").write_text("nobody may list this")
    (root / "locked-dir").chmod(0)
    (root / "nested-brackets.pdf").write_bytes(hostile.nested_array_pdf())
    (root / "flate-bomb.pdf").write_bytes(hostile.flate_bomb_pdf())
    inner = (root / "report.pdf").read_bytes()
    (root / "zip-archive.pdf").write_bytes(hostile.zip_as_pdf(inner))
    (root / "targz-archive.pdf").write_bytes(hostile.targz_as_pdf(inner))
    (root / "zero-pages.pdf").write_bytes(hostile.zero_page_pdf())
    with open(root / "sparse-2gb.txt", "wb") as fh:
        fh.truncate(2 * 2**30)  # 2 GiB of holes: must be refused by its size, never read
    (root / NEWLINE_NAME).write_text("a name with a line break\n")
    with open(os.fsencode(root) + b"/" + LATIN1_NAME, "wb") as fh:
        fh.write(b"a name that is not UTF-8\n")
    line = "the log grows and is rotated\n"
    (root / "truncated-while-read.txt").write_text(line * (3 * 2**20 // len(line)) + "x" * (3 * 2**20 % len(line)))
    (root / "notes.odt").write_bytes(b"PK\x03\x04 not supported")
    assert (root / "truncated-while-read.txt").stat().st_size == 3 * 2**20
    assert len(EXPECTED_FAILURES) + len(EXPECTED_ADDED) + len(EXPECTED_SKIPPED) >= 40
    return root


@pytest.fixture(scope="module")
def bad_run(bad_corpus: Path, rag_cli, tmp_path_factory: pytest.TempPathFactory):
    _require_permission_bits_to_hold(bad_corpus / "locked.txt")
    index = tmp_path_factory.mktemp("bad-index") / "index"
    out = _run_cli(["ingest", bad_corpus, "--index", index, "--json"], rag_cli)
    return index, out


def test_each_bad_file_is_named_with_its_reason_and_the_rest_is_ingested(bad_run, index_snapshot) -> None:
    index, out = bad_run
    assert out.returncode == 2, out.stderr[-3000:]
    report = json.loads(out.stdout)
    failed = {f["source"]: f["error"] for f in report["failed"]}
    assert len(report["failed"]) == len(failed)  # one entry per file
    assert sorted(failed) == sorted(EXPECTED_FAILURES), failed
    for source, reason in EXPECTED_FAILURES.items():
        assert re.search(reason, failed[source], re.I), (source, failed.get(source))
    assert failed["truncated-while-read.txt"] == ("file changed while it was read (3145728 bytes when opened, 1048576 "
                                                  "read, 524288 now); ingest it again once it is complete")
    assert sorted(report["added_files"]) == EXPECTED_ADDED and report["added"] == len(EXPECTED_ADDED)
    assert report["skipped"] == EXPECTED_SKIPPED
    snap = index_snapshot(index)
    assert snap.consistent and sorted(snap.documents) == EXPECTED_ADDED
    assert report["chunks_total"] == len(snap.chunk_ids)


def test_failures_are_one_stderr_line_each_and_a_rerun_does_not_embed(bad_run, bad_corpus: Path, rag_cli) -> None:
    index, _ = bad_run
    out = _run_cli(["ingest", bad_corpus, "--index", index], rag_cli)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("failed: ")]
    assert len(lines) == len(EXPECTED_FAILURES), out.stderr[-3000:]
    for source, reason in EXPECTED_FAILURES.items():
        mine = [ln for ln in lines if ln.startswith(f"failed: {source}: ")]
        assert len(mine) == 1 and re.search(reason, mine[0].removeprefix(f"failed: {source}: "), re.I), (source, lines)
    assert all(ln.isprintable() for ln in out.stderr.splitlines())  # no raw control characters from names
    assert f"{len(EXPECTED_ADDED)} unchanged" in out.stdout and "embedded 0" in out.stdout


def test_what_the_odd_but_legitimate_files_hold_is_indexed(bad_run, embedder) -> None:
    index, _ = bad_run
    with open_pipeline(index, Config(), embedder=embedder) as rag:
        db = rag.collection.store.db

        def text(source: str) -> str:
            rows = db.execute("SELECT c.text FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.source=?",
                              (source,)).fetchall()
            return "\n".join(r[0] for r in rows)

        assert "nine pelicans" in text("javascript.pdf") and "pwned" not in text("javascript.pdf")
        assert "cormorant survey survived" in text("broken-xref.pdf")
        assert "heron sits at the bottom" in text("deep-nesting.html")
        assert text("utf16-no-bom.txt") == UTF16_TEXT.strip()
        assert "grebes" in text("x.pdf/inside.txt")
        assert "OUTSIDESECRET" not in "\n".join(r[0] for r in db.execute("SELECT text FROM chunks"))
        n = db.execute("SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.source=?",
                       ("headings-100k.md",)).fetchone()[0]
        assert n == 100_001  # every heading is a section, and no chunk crosses a section
        assert text("one-line-5mb.txt").startswith("Gannet opens.")
        hits = rag.retrieve("walrus census data point", k=1, mode="keyword")
        assert hits and hits[0].chunk.source in ("one-line-10mb.html", "scripts.html")


def test_latin1_text_is_stored_and_retrievable_as_written(bad_run, embedder) -> None:
    index, _ = bad_run
    with open_pipeline(index, Config(), embedder=embedder) as rag:
        for mode in ("keyword", "dense"):
            hits = rag.retrieve("café bouillabaisse épicée", k=3, mode=mode)
            assert hits[0].chunk.source == "latin1.txt", (mode, [h.chunk.source for h in hits])
            assert hits[0].chunk.text == LATIN1_TEXT.strip()


def test_script_heavy_html_keeps_only_its_main_text(bad_run, embedder) -> None:
    index, _ = bad_run
    with open_pipeline(index, Config(), embedder=embedder) as rag:
        chunks = rag.collection.store.db.execute(
            "SELECT c.text, c.section FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.source='scripts.html'"
        ).fetchall()
        text = "\n".join(c[0] for c in chunks)
        assert "412 walruses" in text and "drones at dawn" in text
        assert "JUNK" not in text and "dataLayer" not in text and "display: none" not in text
        assert {c[1] for c in chunks} == {"Walrus census", "Walrus census > Method"}
        hits = rag.retrieve("How many walruses were counted?", k=1, mode="dense")
        assert hits[0].chunk.source == "scripts.html"


def test_a_huge_single_line_is_ingested(bad_run, embedder) -> None:
    index, out = bad_run
    report = json.loads(out.stdout)
    assert "huge-line.txt" in report["added_files"]
    with open_pipeline(index, Config(), embedder=embedder) as rag:
        n = rag.collection.store.db.execute(
            "SELECT count(*), count(DISTINCT c.text_hash) FROM chunks c JOIN documents d ON d.id=c.doc_id "
            "WHERE d.source='huge-line.txt'").fetchone()
        assert n[0] > 1000  # all of it is indexed; the repeated middle is embedded only a few times
        assert report["chunks_embedded"] < 50
        for sentinel in ("Zanzibar sentinel opens", "Quokka sentinel closes"):
            hits = rag.retrieve(sentinel, k=1, mode="keyword")
            assert hits and hits[0].chunk.source == "huge-line.txt" and sentinel in hits[0].chunk.text


def test_a_file_that_vanishes_after_the_scan_is_reported(tmp_path: Path, embedder, monkeypatch,
                                                         index_snapshot) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    for name in ("a.txt", "gone.txt", "z.txt"):
        (root / name).write_text(f"The file {name} talks about narwhals and their tusks.\n")
    real_scan = pipeline.scan

    def scan_then_delete(paths, extensions):
        found = real_scan(paths, extensions)
        (root / "gone.txt").unlink()  # deleted between the scan and the read
        return found

    monkeypatch.setattr(pipeline, "scan", scan_then_delete)
    report = ingest_paths([root], tmp_path / "index", IngestConfig(), embedder=embedder)

    assert [(f.source, f.error) for f in report.failed] == [
        ("gone.txt", "file vanished before it could be read (or is a broken link)")]
    assert report.added == ["a.txt", "z.txt"]
    assert index_snapshot(tmp_path / "index").consistent


def test_a_fifo_given_directly_is_refused_not_waited_on(tmp_path: Path, rag_cli) -> None:
    fifo = tmp_path / "stream.txt"
    os.mkfifo(fifo)
    out = rag_cli.run(["ingest", fifo, "--index", tmp_path / "index", "--json"], timeout=60)
    assert out.returncode == 2, out.stderr
    assert json.loads(out.stdout)["failed"] == [{"source": "stream.txt",
                                                 "error": "not a regular file (a FIFO, socket or device)"}]


def test_exit_code_1_when_a_path_does_not_exist(tmp_path: Path, rag_cli) -> None:
    out = rag_cli.run(["ingest", tmp_path / "missing", "--index", tmp_path / "index"], timeout=60)
    assert out.returncode == 1
    assert out.stdout == "" and out.stderr.strip().endswith("missing: no such file or directory")
    # With --json the error is a JSON object on stdout (still exit status 1).
    out = rag_cli.run(["ingest", tmp_path / "missing", "--index", tmp_path / "index", "--json"], timeout=60)
    assert out.returncode == 1
    error = json.loads(out.stdout)["error"]
    assert error["message"].endswith("missing: no such file or directory") and error["code"] == 1


def test_oversized_file_is_refused_by_size_before_reading(tmp_path: Path, embedder,
                                                          make_text: Callable[..., str]) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "big.txt").write_text(make_text(1, 200_000))
    (root / "small.txt").write_text("small file about puffins")
    report = ingest_paths([root], tmp_path / "index", IngestConfig(max_file_mb=0.5), embedder=embedder)
    size = (root / "big.txt").stat().st_size
    assert size > 0.5 * 2**20
    assert [(f.source, f.error) for f in report.failed] == [
        ("big.txt", f"file is {size / 2**20:.0f} MiB, over ingest.max_file_mb=0.5")]
    assert report.added == ["small.txt"]
