"""Loaders: one file in, a Document with sections and provenance out (or a LoaderError naming file and reason)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfReader

from ingest.errors import LoaderError
from ingest.loaders import decode_text, load
from ingest.loaders.pdf import clean_pdfium_text, long_word_share
from ingest.pipeline import scan

MakePdf = Callable[..., Path]
PANGRAM = "the quick brown fox jumps over the lazy dog while seven wizards quietly examine ancient manuscripts"


# --- PDF ------------------------------------------------------------------------------------------


def test_pdf_gives_one_section_per_page_with_physical_page_numbers(tmp_path: Path, make_pdf: MakePdf) -> None:
    pdf = make_pdf(tmp_path / "book.pdf", ["Cover of the almanac", None, "Preface about walruses",
                                            "Chapter one on glaciers"],
                    labels=[("r", 0), ("D", 2)], title="The Almanac")
    doc = load(pdf, "book.pdf")

    assert doc.kind == "pdf"
    assert doc.title == "The Almanac"
    # The blank page 2 has no section, but the later pages keep their physical index.
    assert [(s.page, s.text) for s in doc.sections] == [
        (1, "Cover of the almanac"), (3, "Preface about walruses"), (4, "Chapter one on glaciers")]
    # Printed labels are kept beside the physical page ("i" on the cover, "1" on page 3).
    assert [s.page_label for s in doc.sections] == ["i", "1", "2"]
    for s in doc.sections:
        assert doc.text[s.start:s.start + len(s.text)] == s.text


def _assert_pypdf_glues_words(pdf: Path) -> None:
    """The fixture is only a test of recovery if pypdf really loses the spaces in it."""
    for page in PdfReader(pdf).pages:
        raw = page.extract_text()
        assert "quickbrownfox" in raw.replace("\n", ""), raw[:200]
        assert "quick brown" not in raw


def test_pdf_whose_word_spacing_pypdf_loses_is_read_with_its_spaces(tmp_path: Path, make_pdf: MakePdf) -> None:
    """PDFium reads the page text: it infers word gaps from the glyph geometry, where pypdf glues the words."""
    full_page = "\n".join([PANGRAM] * 20)  # a full page: every line one glued "word" in pypdf
    short_page = "\n".join([PANGRAM] * 3)  # fewer than 20 glued "words": must still be detected
    pdf = make_pdf(tmp_path / "tex.pdf", [full_page, short_page], lost_spacing=True)
    _assert_pypdf_glues_words(pdf)
    short_raw = PdfReader(pdf).pages[1].extract_text()
    assert len(short_raw.split()) < 20 and long_word_share(short_raw) >= 0.5

    doc = load(pdf, "tex.pdf")

    assert [s.page for s in doc.sections] == [1, 2]
    for s in doc.sections:
        assert long_word_share(s.text) == 0.0
        words = s.text.split()
        assert words[:6] == ["the", "quick", "brown", "fox", "jumps", "over"]
        assert max(len(w) for w in words) <= len("manuscripts")
    assert len(doc.sections[0].text.split()) == 20 * len(PANGRAM.split())
    assert doc.warnings == ()


def test_pdf_with_normal_spacing_reads_without_warnings(tmp_path: Path, make_pdf: MakePdf) -> None:
    pdf = make_pdf(tmp_path / "plain.pdf", ["\n".join([PANGRAM] * 10)])
    doc = load(pdf, "plain.pdf")
    assert doc.warnings == ()
    assert doc.sections[0].text.split()[:4] == ["the", "quick", "brown", "fox"]
    assert "\r" not in doc.text


def test_pdf_words_hyphenated_across_lines_are_joined(tmp_path: Path, make_pdf: MakePdf) -> None:
    pdf = make_pdf(tmp_path / "hyphen.pdf", ["the manual describes the import facil-\nities of R for spread-\n"
                                             "sheets and data-\nbases in some detail"])
    assert "facil-" in PdfReader(pdf).pages[0].extract_text()  # pypdf keeps the break; PDFium marks it
    doc = load(pdf, "hyphen.pdf")
    assert doc.sections[0].text == ("the manual describes the import facilities of R for spreadsheets and "
                                    "databases in some detail")


def test_clean_pdfium_text() -> None:
    assert clean_pdfium_text("line one\r\nfacil\x02ities\rend\x1c\tcell\x00") == "line one\nfacilities\nend\tcell"


def test_pages_pdfium_cannot_read_find_empty_or_glues_are_read_with_pypdf(tmp_path: Path, make_pdf: MakePdf,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection at the PDFium seam: page 1 unreadable, page 2 empty, page 3 glued; page 4 is PDFium's."""
    from ingest.loaders import pdf as pdf_loader

    texts = ["alpha page one text", "bravo page two text", PANGRAM + " " + PANGRAM, "delta page four text"]
    pdf = make_pdf(tmp_path / "mixed.pdf", texts)
    glued = "".join(texts[2].split()) + " " + "".join(texts[2].split())
    real = pdf_loader._pdfium_document

    def pdfium_misreads(data: bytes, on_page: object = None) -> object:
        read = real(data)
        assert read is not None and sorted(read.texts) == [0, 1, 2, 3]
        read.texts = {1: "  \n", 2: glued, 3: "delta, page four as PDFium read it"}
        return read

    monkeypatch.setattr(pdf_loader, "_pdfium_document", pdfium_misreads)

    doc = load(pdf, "mixed.pdf")

    assert [(s.page, " ".join(s.text.split())) for s in doc.sections] == [
        (1, "alpha page one text"), (2, "bravo page two text"), (3, texts[2]), (4, "delta, page four as PDFium read it")]
    assert "1 page(s) PDFium could not read were read with pypdf" in doc.warnings
    assert "1 page(s) lost word spacing in PDFium; 1 recovered with pypdf" in doc.warnings


@pytest.mark.parametrize("misread", ["", "glued", "\ufffd\ufffd\ufffd \ue001\ue002 \x01\x02 ~~"])
def test_a_pdf_hands_on_its_leading_pages_as_read_up_to_one_that_may_change(
        tmp_path: Path, make_pdf: MakePdf, monkeypatch: pytest.MonkeyPatch, misread: str) -> None:
    """`on_part` gets each page as soon as PDFium has read it, exactly as the Document will hold it, up to the first
    page whose text pypdf or OCR may still replace (empty, glued, or garbage); nothing after it is handed on."""
    from ingest.loaders import pdf as pdf_loader

    texts = [f"{word} page of the walrus survey, counted on the ice" for word in ("first", "second", "third",
                                                                                  "fourth", "fifth")]
    pdf = make_pdf(tmp_path / "survey.pdf", texts)
    real = pdf_loader._pdfium_document
    events: list[tuple[str, int]] = []

    def pdfium_misreads_page_four(data: bytes, on_page=None):  # noqa: ANN001, ANN202 - the seam's own signature
        def page(read, i: int) -> None:  # noqa: ANN001
            events.append(("read", i + 1))
            if i == 3:
                read.texts[3] = PANGRAM + PANGRAM.replace(" ", "") * 3 if misread == "glued" else misread
            on_page(read, i)

        return real(data, page if on_page is not None else None)

    monkeypatch.setattr(pdf_loader, "_pdfium_document", pdfium_misreads_page_four)
    handed: list[tuple[str, str, int | None, str | None]] = []

    def on_part(part: tuple[str, str, int | None, str | None]) -> None:
        handed.append(part)
        events.append(("part", part[2] or 0))

    doc = load(pdf, "survey.pdf", on_part=on_part)

    assert [p[2] for p in handed] == [1, 2, 3]
    assert events[:7] == [("read", 1), ("part", 1), ("read", 2), ("part", 2), ("read", 3), ("part", 3), ("read", 4)]
    assert [(p[0].strip(), p[1], p[2], p[3]) for p in handed] == \
        [(s.text, s.section, s.page, s.page_label) for s in doc.sections[:3]]
    assert doc.sections[-1].page == 5  # the rest is loaded as ever

    handed.clear()
    monkeypatch.setattr(pdf_loader, "_pdfium_document", real)
    whole = load(pdf, "survey.pdf", on_part=on_part)  # nothing misread: every page, as the Document holds them
    assert [(p[0].strip(), p[2]) for p in handed] == [(s.text, s.page) for s in whole.sections] and len(handed) == 5


def test_a_page_label_pdfium_cannot_decode_costs_only_the_label(tmp_path: Path, make_pdf: MakePdf) -> None:
    """A label prefix holding a lone UTF-16 surrogate: pypdfium2 raises UnicodeDecodeError on it."""
    from pypdf import PdfWriter
    from pypdf.generic import ByteStringObject, NameObject

    pdf = make_pdf(tmp_path / "label.pdf", ["the walrus page with enough words to count as text"], labels=[("D", 0)])
    writer = PdfWriter(clone_from=PdfReader(pdf))
    label = writer._root_object["/PageLabels"].get_object()["/Nums"][1].get_object()
    label[NameObject("/P")] = ByteStringObject(b"\xfe\xff\xd8\x00")
    out = io.BytesIO()
    writer.write(out)
    pdf.write_bytes(out.getvalue())
    import pypdfium2

    with pytest.raises(UnicodeDecodeError):
        pypdfium2.PdfDocument(str(pdf)).get_page_label(0)
    doc = load(pdf, "label.pdf")
    assert [(s.page, s.page_label, s.text) for s in doc.sections] == [
        (1, None, "the walrus page with enough words to count as text")]


def test_a_pdf_pdfium_cannot_open_is_read_with_pypdf(tmp_path: Path, make_pdf: MakePdf,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdfium2

    def refuse(*args: object, **kwargs: object) -> None:
        raise pypdfium2.PdfiumError("Failed to load document (PDFium: Data format error).")

    pdf = make_pdf(tmp_path / "two.pdf", ["the first page of words", "the second page of words"])
    monkeypatch.setattr(pypdfium2, "PdfDocument", refuse)
    doc = load(pdf, "two.pdf")
    assert [(s.page, s.text) for s in doc.sections] == [(1, "the first page of words"), (2, "the second page of words")]
    assert doc.warnings == ("2 page(s) PDFium could not read were read with pypdf",)


def test_corrupt_pdf_is_refused_with_reason(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\n" + os.urandom(3000))
    with pytest.raises(LoaderError) as e:
        load(bad, "broken.pdf")
    assert e.value.source == "broken.pdf"
    assert "PDF" in e.value.reason


def test_pdf_encrypted_with_a_user_password_is_refused(tmp_path: Path, make_pdf: MakePdf) -> None:
    pdf = make_pdf(tmp_path / "locked.pdf", ["classified walrus census"], user_password="secret")
    assert PdfReader(pdf).is_encrypted
    with pytest.raises(LoaderError, match="password") as e:
        load(pdf, "locked.pdf")
    assert str(e.value).startswith("locked.pdf: ")


def test_pdf_encrypted_with_only_an_owner_password_is_read(tmp_path: Path, make_pdf: MakePdf) -> None:
    pdf = make_pdf(tmp_path / "owner.pdf", ["printable walrus census"], owner_password="owner")
    assert PdfReader(pdf).is_encrypted
    assert load(pdf, "owner.pdf").sections[0].text == "printable walrus census"


def test_pdf_without_text_is_refused(tmp_path: Path, make_pdf: MakePdf) -> None:
    pdf = make_pdf(tmp_path / "scan.pdf", [None, None])
    with pytest.raises(LoaderError, match="no extractable text"):
        load(pdf, "scan.pdf")


# --- Markdown -------------------------------------------------------------------------------------

MARKDOWN = """Preamble before any heading.

# Guide

Guide body.

## Install

Install body.

```bash
# this is a shell comment, not a heading
## neither is this
pip install thing
```

~~~
# tilde fence, still code
~~~

### On Linux

Linux body.

## Usage

Usage body.

# Appendix

Appendix body.
"""


def test_markdown_sections_carry_the_heading_path() -> None:
    doc = load(Path("guide.md"), "guide.md", MARKDOWN.encode())

    assert doc.kind == "markdown"
    assert doc.title == "Guide"
    assert [s.section for s in doc.sections] == [
        "", "Guide", "Guide > Install", "Guide > Install > On Linux", "Guide > Usage", "Appendix"]
    install = doc.sections[2]
    assert install.text.startswith("## Install")
    # '#' lines inside fences belong to the section that contains the fence.
    assert "# this is a shell comment, not a heading" in install.text
    assert "## neither is this" in install.text
    assert "# tilde fence, still code" in install.text
    assert "Linux body." in doc.sections[3].text and "Linux body." not in install.text
    for s in doc.sections:
        assert doc.text[s.start:s.start + len(s.text)] == s.text


def test_markdown_heading_levels_that_skip_are_still_nested() -> None:
    doc = load(Path("a.md"), "a.md", b"# Top\n\ntext\n\n### Deep\n\ndeep text\n\n## Mid\n\nmid text\n")
    assert [s.section for s in doc.sections] == ["Top", "Top > Deep", "Top > Mid"]


# --- HTML -----------------------------------------------------------------------------------------

HTML = """<!doctype html>
<html><head><title>Walrus Handbook</title>
<style>body { color: red } .STYLEJUNK {}</style>
<script>var t = "SCRIPTJUNK"; document.write("SCRIPTJUNK");</script>
</head><body>
<nav><a href="/">NAVJUNK Home</a> <a href="/x">NAVJUNK Other</a></nav>
<header>HEADERJUNK site banner</header>
<div class="cookie-banner">COOKIEJUNK We use cookies</div>
<div id="sidebar">SIDEBARJUNK related links</div>
<main>
  <h1>Caring for walruses</h1>
  <p>Walruses need cold water and plenty of clams.</p>
  <script>trackVisit("SCRIPTJUNK2")</script>
  <h2>Feeding</h2>
  <p>Feed them <b>twice</b> a day.</p>
  <table><tr><th>Food</th><th>Amount</th></tr><tr><td>clams</td><td>40 kg</td></tr></table>
  <h3>Treats</h3>
  <ul><li>sardines</li><li>squid</li></ul>
  <h2>Housing</h2>
  <p>A pool of at least twenty metres.</p>
  <form><input value="FORMJUNK"><button>BUTTONJUNK</button></form>
</main>
<aside>ASIDEJUNK</aside>
<footer>FOOTERJUNK copyright 2024</footer>
</body></html>
"""


def test_html_keeps_main_text_headings_and_title_and_drops_boilerplate() -> None:
    doc = load(Path("walrus.html"), "walrus.html", HTML.encode())
    text = doc.text

    assert doc.kind == "html"
    assert doc.title == "Walrus Handbook"
    for wanted in ["Caring for walruses", "Walruses need cold water and plenty of clams.", "Feed them twice a day.",
                   "Food | Amount", "clams | 40 kg", "sardines", "A pool of at least twenty metres."]:
        assert wanted in text
    assert "JUNK" not in text, text
    assert "color: red" not in text
    sections = {s.section: s.text for s in doc.sections}
    assert list(sections) == ["Caring for walruses", "Caring for walruses > Feeding",
                              "Caring for walruses > Feeding > Treats", "Caring for walruses > Housing"]
    assert sections["Caring for walruses > Feeding"].startswith("Feeding")
    assert "squid" in sections["Caring for walruses > Feeding > Treats"]


def test_html_without_main_uses_body_and_title_as_section() -> None:
    page = (b"<html><head><title>Plain page</title></head><body><div class='navbar'>NAVJUNK</div>"
            b"<p>Only a paragraph about otters.</p><div class='footer'>FOOTERJUNK</div></body></html>")
    doc = load(Path("p.htm"), "p.htm", page)
    assert doc.text == "Only a paragraph about otters."
    assert doc.sections[0].section == "Plain page"


def test_html_that_is_only_scripts_and_navigation_has_no_text() -> None:
    page = b"<html><body><nav>menu</nav><script>x()</script><footer>f</footer></body></html>"
    with pytest.raises(LoaderError, match="no extractable text"):
        load(Path("junk.html"), "junk.html", page)


@pytest.mark.parametrize("page", [
    '<meta charset="latin-1"><title>Caf\xe9</title><p>na\xefve \xe9t\xe9</p>'.encode("latin-1"),
    "\ufeff<title>Caf\xe9</title><p>na\xefve \xe9t\xe9</p>".encode("utf-8"),
])
def test_html_is_decoded_by_bom_then_declared_charset(page: bytes) -> None:
    doc = load(Path("c.html"), "c.html", page)
    assert (doc.title, doc.text) == ("Caf\xe9", "na\xefve \xe9t\xe9")


def test_html_text_details_stay_as_before_the_lxml_rewrite() -> None:
    # Whitespace-only runs between tags are one space (a tab there is not a cell break); comments, doctypes and
    # ruby annotations are no text; the title is the first <title> (a later one is text); nesting deeper than
    # lxml's tree limit (256 levels) is still read.
    page = (b"<title>First title</title><body><title>Second</title><h1>He<!-- c -->ad</h1>"
            b"<p><b>x</b>\t<b>y</b></p><p>a<!DOCTYPE x>\t<!DOCTYPE y>b</p><p><ruby>kan<rt>KAN</rt></ruby>ji</p>"
            + b"<div>" * 3000 + b"deep" + b"</div>" * 3000 + b"<table><tr><td>c1</td>\t<td>c2</td></tr></table>")
    doc = load(Path("d.html"), "d.html", page)
    assert doc.title == "First title"
    assert doc.text == "Second\n\nHead\nx y\na b\nkanji\ndeep\nc1 | c2"



PRETTY_TABLE = b"""<html><body><main><p>Affinity by declared type:</p>
<table border="1">
  <tr>
    <th>Example Typenames From The<br>
        CREATE TABLE Statement</th>
    <th>Resulting Affinity
    </th>
  </tr>
  <tr>
    <td>
      INT<br>
      INTEGER<br>
      TINYINT
    </td>
    <td>INTEGER
    </td>
  </tr>
  <tr><td>REAL</td> <td></td></tr>
</table>
<table><tr><td>layout</td></tr></table>
</main></body></html>"""


def test_html_table_rows_stay_on_one_line_each_under_a_header_separator() -> None:
    # A pretty-printed table once put every cell on a line of its own ("INT\nINTEGER\nTINYINT\nINTEGER"), so no
    # row could be read: whitespace between a table's tags is layout, a cell's line breaks (<br>, source
    # newlines) are spaces, an empty cell keeps its column, and a header row (<th> only) gets a Markdown
    # separator so that context blocks name each row's columns.
    doc = load(Path("t.html"), "t.html", PRETTY_TABLE)
    assert doc.text == ("Affinity by declared type:\n"
                        "Example Typenames From The CREATE TABLE Statement | Resulting Affinity\n"
                        "--- | ---\n"
                        "INT INTEGER TINYINT | INTEGER\n"
                        "REAL | \n"
                        "layout")


def test_html_table_rows_get_their_column_names_in_a_context_block() -> None:
    from rag.tables import with_column_names

    doc = load(Path("t.html"), "t.html", PRETTY_TABLE)
    named = with_column_names(doc.text.removesuffix("\nlayout"))
    assert named.split("\n")[1:] == [
        "Example Typenames From The CREATE TABLE Statement: INT INTEGER TINYINT; Resulting Affinity: INTEGER",
        "Example Typenames From The CREATE TABLE Statement: REAL"]


def test_html_text_indented_with_tabs_is_no_table_row() -> None:
    # A cell's end is its own mark, not a tab: text indented with a tab (in a paragraph or <pre>) stays text, as
    # before tables kept their empty cells (a first version wrote "\n | This document is free ..." here)
    page = b"<p>\n\tThis document is free.</p><pre>\tcode\n\tmore</pre><p>a\tb</p><table><tr><td>x</td><td></td></tr></table>"
    assert load(Path("i.html"), "i.html", page).text == "This document is free.\ncode\nmore\na | b\nx |"


# --- plain text and encodings ---------------------------------------------------------------------


def test_plain_text_is_one_section_with_windows_newlines_normalised() -> None:
    doc = load(Path("notes.txt"), "notes.txt", b"Otter notes\r\n\r\nOtters hold hands while sleeping.\r\n")
    assert doc.kind == "text"
    assert doc.title == "Otter notes"
    assert doc.text == "Otter notes\n\nOtters hold hands while sleeping."
    assert [(s.section, s.page, s.start) for s in doc.sections] == [("", None, 0)]


@pytest.mark.parametrize(
    "text",
    ["café\n", "Le café est très agréable. Où est la crème brûlée? Ça coûte cher.\n",
     "Grüße aus München, schöne Straße.\n", "El niño comió piña. ¿Qué tal?\n"],
)
def test_latin1_text_is_decoded_correctly(text: str) -> None:
    data = text.encode("latin-1")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert decode_text(data, "old.txt") == text


@pytest.mark.parametrize(("text", "encoding"), [
    ("Привет, как дела? Это тестовый текст на русском языке.\n", "cp1251"),
    ("Příliš žluťoučký kůň úpěl ďábelské ódy.\n", "cp1250"),
    ("Price: 5 € with “curly quotes”.\n", "cp1252"),
])
def test_other_legacy_encodings_still_decode(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding), "old.txt") == text


def test_utf8_with_bom_is_decoded_without_the_bom() -> None:
    assert decode_text("\ufeffNaïve café".encode("utf-8"), "bom.txt") == "Naïve café"


@pytest.mark.parametrize("data", [os.urandom(4096) + b"\x00", bytes(range(1, 256)) * 20,
                                  b"\x89PNG\r\n\x1a\n" + bytes((i * 37) % 255 + 1 for i in range(3000))])
def test_binary_data_with_a_text_name_is_refused(data: bytes) -> None:
    with pytest.raises(LoaderError, match="binary data") as e:
        load(Path("image.txt"), "image.txt", data)
    assert e.value.source == "image.txt"


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.html", "empty.pdf"])
def test_empty_files_are_refused(name: str) -> None:
    with pytest.raises(LoaderError, match="empty file"):
        load(Path(name), name, b"")
    with pytest.raises(LoaderError, match="empty file"):
        load(Path(name), name, b"  \n\n\t ")


def test_unknown_extension_is_refused_by_load_and_reported_as_skipped_by_scan(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="unsupported file type '.odt'"):
        load(Path("letter.odt"), "letter.odt", b"PK\x03\x04")
    (tmp_path / "letter.odt").write_bytes(b"PK\x03\x04")
    (tmp_path / "Makefile").write_text("all:\n")
    (tmp_path / "keep.md").write_text("# Keep\n")
    files, skipped = scan([tmp_path], (".md",))
    assert [f.source for f in files] == ["keep.md"]
    assert sorted((s.source, s.error) for s in skipped) == [
        ("Makefile", "skipped: unsupported file type '(none)'"),
        ("letter.odt", "skipped: unsupported file type '.odt'"),
    ]


def test_scan_gives_paths_relative_to_the_root_and_cuts_directory_link_loops(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "deep.txt").write_text("deep")
    (root / "top.md").write_text("# top")
    (root / ".hidden.txt").write_text("hidden files are not ingested")
    os.symlink(root, root / "a" / "loop")  # a directory link back to the root
    files, skipped = scan([root], (".txt", ".md"))
    assert [f.source for f in files] == ["a/b/deep.txt", "top.md"]
    assert skipped == []
    single, _ = scan([root / "a" / "b" / "deep.txt"], (".txt",))
    assert [f.source for f in single] == ["deep.txt"]


def test_pdf_bytes_survive_round_trip_through_the_fixture(tmp_path: Path, make_pdf: MakePdf) -> None:
    """Guard for the fixture itself: the text written to a page is what pypdf reads back."""
    pdf = make_pdf(tmp_path / "x.pdf", ["alpha beta gamma"])
    assert PdfReader(io.BytesIO(pdf.read_bytes())).pages[0].extract_text() == "alpha beta gamma"
