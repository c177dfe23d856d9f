"""Word, PowerPoint and EPUB files, scanned PDFs (OCR) and hostile Office files: loaded directly, through the real
ingest (worker processes, SQLite, FAISS) and through the `rag ingest` command line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import office_files as office
import pytest

from ingest.config import IngestConfig
from ingest.errors import LoaderError
from ingest.loaders import load
from ingest.loaders.ocr import OCR_SECTION, needs_ocr, page_list, tesseract
from ingest.pipeline import ingest_paths


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def tesseract_cmd() -> str:
    """The tesseract command; in CI its absence fails the test (scripts/install.sh installs it), elsewhere skips."""
    cmd = tesseract()
    if cmd is None:
        msg = "tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng; scripts/install.sh does)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return cmd


def test_docx_headings_become_section_paths_and_tables_rows(tmp_path: Path) -> None:
    doc = load(office.make_docx(tmp_path / "handbook.docx"), "handbook.docx")
    assert doc.kind == "docx" and doc.title == "Tide gauge handbook"
    by_section = {s.section: s.text for s in doc.sections}
    assert office.DOCX_FACTS["intro"] in by_section["Tide gauge handbook"]
    assert office.DOCX_FACTS["linux"] in by_section["Tide gauge handbook > Installation > On Linux"]
    assert office.DOCX_FACTS["windows"] in by_section["Tide gauge handbook > Installation > On Windows"]
    ports = by_section["Tide gauge handbook > Ports"].splitlines()
    assert ports[1:4] == ["service | port | protocol", "gauge | 7411 | tcp", "merged note"]  # merged cell once
    assert ports[-1] == "After the table comes a closing remark about buoys."  # reading order kept
    assert all(s.page is None for s in doc.sections)
    assert doc.text[doc.sections[2].start:].startswith(doc.sections[2].text)  # offsets index the text


def test_pptx_slides_are_sections_with_their_number_as_page(tmp_path: Path) -> None:
    doc = load(office.make_pptx(tmp_path / "deck.pptx"), "deck.pptx")
    assert doc.kind == "pptx" and doc.title == "Arctic logistics"
    assert [(s.section, s.page) for s in doc.sections] == [
        ("Slide 1: Topic 1", 1), ("Slide 2: Topic 2", 2), ("Slide 3: Fleet table", 3)]
    assert office.PPTX_FACTS[2] in doc.sections[1].text
    assert "Notes: Speaker note 2: mention the 2 charts." in doc.sections[1].text
    assert doc.sections[2].text.splitlines()[1:] == ["ship | port", "Polarstern | Bremerhaven", "Healy | Seattle"]
    assert doc.pages_without_text == (4,)  # the blank slide is reported, not hidden


def test_epub_chapters_in_reading_order_titled_from_the_table_of_contents(tmp_path: Path) -> None:
    doc = load(office.make_epub(tmp_path / "book.epub"), "book.epub")
    assert doc.kind == "epub" and doc.title == "Whaling stories"
    assert [s.section for s in doc.sections] == ["Chapter 1", "Chapter 1 > Aftermath 1", "Chapter 2",
                                                 "Chapter 2 > Aftermath 2"]
    assert doc.sections[0].text == office.EPUB_FACTS["chap1.xhtml"]
    assert "Whaling stories" not in doc.text  # the navigation document is not a chapter


@pytest.mark.parametrize("name, data, reason", [
    ("bomb.docx", office.zip_bomb(600), r"^ZIP bomb refused: it would unpack to 600 MiB \(the limit is 256 MiB\)$"),
    ("bomb.pptx", office.zip_bomb(40), r"^ZIP bomb refused: member 'word/document.xml' unpacks"),
    ("text.docx", b"Dear Sir,\nthis is plain text with a .docx name.\n", r"^not a ZIP container: a \.docx file is a ZIP"),
    ("zip.docx", office.plain_zip(), r"^not a \.docx file: the ZIP container lacks \[Content_Types\]\.xml, word/document"),
])
def test_hostile_office_files_fail_with_one_clear_line(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(LoaderError) as e:
        load(Path(name), name, data)
    assert re.match(reason, e.value.reason), e.value.reason
    assert str(e.value).startswith(f"{name}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("maker, name", [(office.make_docx, "t.docx"), (office.make_pptx, "t.pptx"),
                                         (office.make_epub, "t.epub")])
def test_truncated_office_files_fail_with_one_clear_line(tmp_path: Path, maker, name: str) -> None:  # noqa: ANN001
    data = maker(tmp_path / name).read_bytes()
    with pytest.raises(LoaderError, match=r"^.*: corrupt or truncated ZIP container \(File is not a zip file\)$"):
        load(Path(name), name, office.truncated(data))


def test_garbage_detection() -> None:
    assert needs_ocr("") and needs_ocr("  12  ") and needs_ocr("\x01\x02\x03\x04" * 40 + "abcdefghijkl")
    assert needs_ocr("\ue000\ue001\ue002 " * 30 + "abcdefghijkl")
    assert not needs_ocr("The lighthouse lamp turns every nine seconds at night.")
    assert not needs_ocr("Table 3: 12.5 13.1 14.7 15.2 16.0 17.9 18.3 19.4 20.1 21.6")
    # A table of contents or an index: mostly dot leaders, a real text layer all the same (R-data.pdf's pages 3,
    # 4 and 38-41 were once sent to OCR, which took minutes and replaced their text).
    toc = "Table of Contents\nAcknowledgements " + "." * 60 + " 1\n1 Introduction " + "." * 70 + " 3\n"
    assert not needs_ocr(toc * 3)
    assert needs_ocr("\u00a4\u00a6\u00a8\u00ac\u00af\u00b4 " * 20 + "abcdefghijklmnopqr")  # stray symbols
    assert page_list([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"


def test_scanned_page_is_read_by_ocr_keeping_its_page_number(tmp_path: Path, tesseract_cmd: str) -> None:
    pdf = office.make_scanned_pdf(tmp_path / "scan.pdf", [None, office.SCAN_LINES, None])
    doc = load(pdf, "scan.pdf")
    assert [(s.page, s.section) for s in doc.sections] == [(2, OCR_SECTION)]
    words = " ".join(doc.sections[0].text.split()).lower()
    assert "lighthouse lamp turns every nine seconds at night" in words
    assert doc.pages_without_text == (1, 3)
    assert doc.warnings == ("page(s) 1, 3 have no text, even by OCR",)


def test_without_tesseract_the_pages_are_named_not_silently_empty(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingest.loaders.ocr.tesseract", lambda: None)
    pdf = office.make_scanned_pdf(tmp_path / "scan.pdf", [office.SCAN_LINES, office.SCAN_LINES])
    with pytest.raises(LoaderError, match=r"^scan\.pdf: no extractable text \(page\(s\) 1-2 have no text layer and "
                                          r"were not OCR'd: Tesseract is not installed \(apt-get install"):
        load(pdf, "scan.pdf")


def _corpus(root: Path) -> Path:
    root.mkdir()
    office.make_docx(root / "handbook.docx")
    office.make_pptx(root / "deck.pptx")
    office.make_epub(root / "book.epub")
    office.make_scanned_pdf(root / "scan.pdf", [office.SCAN_LINES, None])
    (root / "bomb.docx").write_bytes(office.zip_bomb(600))
    (root / "plain.docx").write_bytes(b"not a zip at all")
    (root / "cut.pptx").write_bytes(office.truncated((root / "deck.pptx").read_bytes()))
    (root / "notes.md").write_text("# Notes\n\nThe harbour master keeps the tide tables.\n")
    return root


def test_ingest_reports_formats_pages_without_text_and_ocr(tmp_path: Path, hash_embedder, tesseract_cmd: str) -> None:  # noqa: ANN001
    from rag.api import open_pipeline
    from rag.config import Config

    docs = _corpus(tmp_path / "docs")
    index = tmp_path / "index"
    rep = ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)
    assert rep.formats == {
        "docx": {"ingested": 1, "unchanged": 0, "failed": 2}, "pptx": {"ingested": 1, "unchanged": 0, "failed": 1},
        "epub": {"ingested": 1, "unchanged": 0, "failed": 0}, "pdf": {"ingested": 1, "unchanged": 0, "failed": 0},
        "markdown": {"ingested": 1, "unchanged": 0, "failed": 0}}
    assert {f.source: f.error for f in rep.failed} == {
        "bomb.docx": "ZIP bomb refused: it would unpack to 600 MiB (the limit is 256 MiB)",
        "plain.docx": "not a ZIP container: a .docx file is a ZIP file and this one is not (corrupt, or another "
                      "format under this extension)",
        "cut.pptx": "corrupt or truncated ZIP container (File is not a zip file)"}
    assert rep.pages_without_text == {"deck.pptx": [4], "scan.pdf": [2]}
    assert rep.ocr_pages == 1
    assert [(w.source, w.error) for w in rep.warnings] == [("scan.pdf", "page(s) 2 have no text, even by OCR")]
    again = ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)
    assert again.formats["docx"] == {"ingested": 0, "unchanged": 1, "failed": 2}
    with open_pipeline(index, Config(index_dir=index), embedder=hash_embedder) as r:
        hit = r.retrieve("lighthouse lamp", k=1, mode="keyword")[0].to_dict()
        assert (hit["source"], hit["page"], hit["section"]) == ("scan.pdf", 1, OCR_SECTION)  # OCR shows in provenance
        hit = r.retrieve("Polarstern Bremerhaven", k=1, mode="keyword", filters=["source=deck.pptx"])[0].to_dict()
        assert hit["page"] in (2, 3) and hit["section"].startswith(f"Slide {hit['page']}: ")


@pytest.mark.slow
def test_rag_ingest_prints_formats_and_names_pages_left_without_text(tmp_path: Path, rag_cli) -> None:  # noqa: ANN001
    """Where Tesseract is missing (PATH without it), `rag ingest` names each file and its pages without text."""
    docs = _corpus(tmp_path / "docs")
    office.make_scanned_pdf(docs / "scan.pdf", [office.SCAN_LINES, ["typed page"]])
    from fpdf import FPDF

    pdf = FPDF()
    for text in ("A typed page about harbour cranes.", None):
        pdf.add_page()
        if text:
            pdf.set_font("Helvetica", size=12)
            pdf.cell(0, 10, text)
    pdf.output(str(docs / "half-scanned.pdf"))
    bindir = tmp_path / "bin"  # python and rag, but no tesseract
    bindir.mkdir()
    for tool in ("python3", "sh"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    env = {**rag_cli.env, "PATH": f"{Path(rag_cli.argv[0]).parent}:{bindir}"}

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*rag_cli.argv, *map(str, args)], cwd=rag_cli.cwd, env=env, capture_output=True,
                              text=True, timeout=600, check=False)

    done = run("ingest", docs, "--index", tmp_path / "index")
    assert done.returncode == 2, done.stderr  # some files failed
    err = done.stderr.splitlines()
    assert "failed: scan.pdf: no extractable text (page(s) 1-2 have no text layer and were not OCR'd: Tesseract is " \
           "not installed (apt-get install tesseract-ocr tesseract-ocr-eng))" in err
    assert "warning: half-scanned.pdf: page(s) 2 have no text layer and were not OCR'd: Tesseract is not installed " \
           "(apt-get install tesseract-ocr tesseract-ocr-eng)" in err
    assert "failed: bomb.docx: ZIP bomb refused: it would unpack to 600 MiB (the limit is 256 MiB)" in err
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("by format: "))
    assert line == ("by format: docx 1 (2 failed), epub 1, markdown 1, pdf 1 (1 failed), pptx 1 (1 failed); "
                    "4 pages, 2 without text")
    out = run("ingest", docs, "--index", tmp_path / "index", "--json")
    summary = json.loads(out.stdout)
    assert summary["schema_version"] == 1
    assert summary["formats"]["pdf"] == {"ingested": 0, "unchanged": 1, "failed": 1}
    assert summary["pages_without_text"] == {}  # nothing new was loaded
    assert [f["source"] for f in summary["failed"]] == ["bomb.docx", "cut.pptx", "plain.docx", "scan.pdf"]
