"""Real Word, PowerPoint, EPUB and scanned PDF files built with the libraries people make them with, plus hostile
ones (a ZIP bomb, a file that is not a ZIP, a truncated one). Known text, so tests can look for it."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

DOCX_FACTS = {
    "intro": "The walrus census counts 412 animals on the northern beaches.",
    "linux": "On Linux the tide gauge daemon listens on port 7411.",
    "windows": "On Windows the tide gauge service starts from the tray icon.",
}
PPTX_FACTS = {
    1: "Quarterly krill harvest rose by eleven percent.",
    2: "The icebreaker Polarstern docks at Bremerhaven in May.",
}
EPUB_FACTS = {
    "chap1.xhtml": "Captain Ahab sought the white whale across every ocean.",
    "chap2.xhtml": "Ishmael signed aboard the Pequod at Nantucket harbour.",
}
SCAN_LINES = ["The lighthouse lamp", "turns every nine", "seconds at night"]


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.core_properties.title = "Tide gauge handbook"
    d.add_heading("Tide gauge handbook", 0)
    d.add_paragraph(DOCX_FACTS["intro"])
    d.add_heading("Installation", 1)
    d.add_heading("On Linux", 2)
    d.add_paragraph(DOCX_FACTS["linux"])
    d.add_heading("On Windows", 2)
    d.add_paragraph(DOCX_FACTS["windows"])
    d.add_heading("Ports", 1)
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("service", "port", "protocol"), ("gauge", "7411", "tcp"), ("merged note", "", "")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    table.cell(2, 0).merge(table.cell(2, 2))  # one cell spanning the row: written once
    d.add_paragraph("After the table comes a closing remark about buoys.")
    d.save(path)
    return path


def make_pptx(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Arctic logistics"
    for number, fact in PPTX_FACTS.items():
        slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
        slide.shapes.title.text = f"Topic {number}"
        slide.placeholders[1].text = fact
        slide.notes_slide.notes_text_frame.text = f"Speaker note {number}: mention the {number} charts."
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only, plus a table
    slide.shapes.title.text = "Fleet table"
    rows = [("ship", "port"), ("Polarstern", "Bremerhaven"), ("Healy", "Seattle")]
    shape = slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            shape.table.cell(r, c).text = text
    deck.slides.add_slide(deck.slide_layouts[6])  # a blank slide: no text at all
    deck.save(path)
    return path


def make_epub(path: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("rag-test-book")
    book.set_title("Whaling stories")
    book.set_language("en")
    chapters = []
    for i, (name, fact) in enumerate(EPUB_FACTS.items(), start=1):
        ch = epub.EpubHtml(title=f"Chapter {i}", file_name=name, lang="en")
        ch.content = f"<html><body><p>{fact}</p><h2>Aftermath {i}</h2><p>Part {i} ends at sea.</p></body></html>"
        book.add_item(ch)
        chapters.append(ch)
    book.toc = [epub.Link(c.file_name, c.title, c.file_name.split(".")[0]) for c in chapters]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


def make_scanned_pdf(path: Path, pages: list[list[str] | None]) -> Path:
    """A PDF whose pages are only images of text (what a scanner makes): rendered with PIL, no text layer.
    None makes a blank page."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=64)
    images = []
    for lines in pages:
        image = Image.new("L", (1700, 2200), 255)  # A4-ish at 200 dpi
        if lines:
            draw = ImageDraw.Draw(image)
            for i, line in enumerate(lines):
                draw.text((150, 200 + 110 * i), line, fill=0, font=font)
        images.append(image.convert("RGB"))
    images[0].save(path, format="PDF", resolution=200, save_all=True, append_images=images[1:])
    return path


def zip_bomb(inflated_mb: int = 600) -> bytes:
    """A .docx-shaped ZIP whose document part inflates to `inflated_mb` MiB of zeros (a few hundred KiB packed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * 2**20
            for _ in range(inflated_mb):
                member.write(block)
    return buf.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def plain_zip() -> bytes:
    """A ZIP file that is no Office document (a renamed archive)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "just an archive")
    return buf.getvalue()
