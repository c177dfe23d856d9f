"""Bad input: each bad file is one line naming the file and the reason; every other file is ingested; exit code 2."""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import pipeline
from ingest.config import IngestConfig
from ingest.pipeline import ingest_paths
from rag.api import open_pipeline
from rag.config import Config

pytestmark = pytest.mark.slow

LATIN1_TEXT = "Le café de la gare sert une bouillabaisse très épicée. Où est la crème brûlée?\n"
HUGE_HEAD, HUGE_TAIL = "Zanzibar sentinel opens the long line. ", "Quokka sentinel closes the long line."

# Bad files and what the reason must say (matched case-insensitively).
EXPECTED_FAILURES = {
    "corrupt.pdf": r"corrupt or unreadable PDF",
    "encrypted.pdf": r"encrypted PDF: a password is required",
    "empty.txt": r"empty file",
    "binary.txt": r"binary data",
    "loop.txt": r"symbolic link loop",
    "pipe.txt": r"not a regular file",
    "locked.txt": r"permission denied",
}
EXPECTED_ADDED = ["good.md", "huge-line.txt", "latin1.txt", "report.pdf", "scripts.html"]

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


def _permission_bits_hold(path: Path) -> bool:
    """Whether a child started like the CLI below is refused reading a chmod 000 file."""
    probe = subprocess.run(["cat", str(path)], preexec_fn=_drop_file_permission_override, capture_output=True,
                           check=False)
    return probe.returncode != 0


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory, make_pdf: Callable[..., Path]) -> Path:
    root = tmp_path_factory.mktemp("bad") / "docs"
    root.mkdir()
    (root / "good.md").write_text("# Penguins\n\nEmperor penguins huddle together to survive the winter.\n")
    make_pdf(root / "report.pdf", ["Page one mentions the glacier.", "Page two mentions the fjord."])
    (root / "latin1.txt").write_bytes(LATIN1_TEXT.encode("latin-1"))
    (root / "huge-line.txt").write_text(HUGE_HEAD + "lorem ipsum dolor sit amet consectetur " * 65_000 + HUGE_TAIL)
    (root / "scripts.html").write_text(SCRIPT_HEAVY_HTML)
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog" + os.urandom(4000))
    make_pdf(root / "encrypted.pdf", ["the secret walrus plan"], user_password="hunter2")
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.txt").write_bytes(os.urandom(2048) + b"\x00\x01\x02" + os.urandom(2048))
    os.symlink("loop.txt", root / "loop.txt")  # a link to itself: ELOOP on open
    os.mkfifo(root / "pipe.txt")  # reading a FIFO with no writer would block forever
    (root / "locked.txt").write_text("nobody may read this")
    (root / "locked.txt").chmod(0)
    (root / "notes.docx").write_bytes(b"PK\x03\x04 not supported")
    assert (root / "huge-line.txt").stat().st_size > 2_000_000
    return root


@pytest.fixture(scope="module")
def bad_run(bad_corpus: Path, rag_cli, tmp_path_factory: pytest.TempPathFactory):
    if not _permission_bits_hold(bad_corpus / "locked.txt"):
        pytest.skip("cannot make a file unreadable here (root keeps CAP_DAC_OVERRIDE)")
    index = tmp_path_factory.mktemp("bad-index") / "index"
    out = rag_cli.run(["ingest", bad_corpus, "--index", index, "--json"], timeout=240,
                      preexec_fn=_drop_file_permission_override)
    return index, out


def test_each_bad_file_is_named_with_its_reason_and_the_rest_is_ingested(bad_run, index_snapshot,
                                                                         corpus_hashes) -> None:
    index, out = bad_run
    assert out.returncode == 2, out.stderr
    report = json.loads(out.stdout)
    failed = {f["source"]: f["error"] for f in report["failed"]}
    assert len(report["failed"]) == len(failed) == len(EXPECTED_FAILURES)
    for source, reason in EXPECTED_FAILURES.items():
        assert re.search(reason, failed[source], re.I), (source, failed.get(source))
    assert sorted(report["added_files"]) == EXPECTED_ADDED and report["added"] == len(EXPECTED_ADDED)
    assert report["skipped"] == [{"source": "notes.docx", "error": "skipped: unsupported file type '.docx'"}]
    snap = index_snapshot(index)
    assert snap.consistent and sorted(snap.documents) == EXPECTED_ADDED
    assert report["chunks_total"] == len(snap.chunk_ids)


def test_failures_are_one_stderr_line_each_and_a_rerun_does_not_embed(bad_run, bad_corpus: Path, rag_cli) -> None:
    index, _ = bad_run
    out = rag_cli.run(["ingest", bad_corpus, "--index", index], preexec_fn=_drop_file_permission_override)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("failed: ")]
    assert len(lines) == len(EXPECTED_FAILURES), out.stderr
    for source, reason in EXPECTED_FAILURES.items():
        mine = [ln for ln in lines if ln.startswith(f"failed: {source}: ")]
        assert len(mine) == 1 and re.search(reason, mine[0], re.I), (source, lines)
    assert "5 unchanged" in out.stdout and "embedded 0" in out.stdout


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
