"""Builders of hostile and malformed input files for the ingestion tests (PDFs built byte by byte where needed)."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib


def nested_array_pdf(depth: int = 20_000) -> bytes:
    """A ~450-byte PDF whose page tree is `depth` nested arrays inside a compressed object stream: pypdf recurses
    once per level (RecursionError)."""
    return _object_stream_pdf(b"[" * depth)


def _object_stream_pdf(payload: bytes) -> bytes:
    """Objects 1 (catalog, /Pages 2 0 R) and 3 (a page) plain; object 2 = `payload` inside a FlateDecode object
    stream (object 4); a cross-reference stream (object 5)."""
    out = io.BytesIO()
    out.write(b"%PDF-1.5\n")
    offsets: dict[int, int] = {}

    def obj(n: int, body: bytes) -> None:
        offsets[n] = out.tell()
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")

    obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    obj(3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>")
    head = b"2 0 "
    data = zlib.compress(head + payload, 9)
    obj(4, b"<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\nstream\n" % (len(head), len(data))
        + data + b"\nendstream")
    xref_at = out.tell()
    rows = [(0, 0, 65535), (1, offsets[1], 0), (2, 4, 0), (1, offsets[3], 0), (1, offsets[4], 0), (1, xref_at, 0)]
    xdata = zlib.compress(b"".join(struct.pack(">BIH", *r) for r in rows))
    out.write(b"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Filter /FlateDecode /Length %d >>\nstream\n"
              % len(xdata) + xdata + b"\nendstream\nendobj\n")
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref_at)
    return out.getvalue()


def _pdf_with_content(raw: bytes, text: str = "hello", pages: int = 1) -> bytes:
    """A PDF (made by fpdf2, so it has a font) of `pages` pages that all share one content stream, `raw`, Flate
    compressed."""
    from fpdf import FPDF
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import EncodedStreamObject, NameObject

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for _ in range(pages):
        pdf.add_page()
        pdf.text(10, 10, text)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(pdf.output()))))
    stream = EncodedStreamObject()
    stream._data = zlib.compress(raw, 9)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    contents = writer._add_object(stream)
    for page in writer.pages:
        page[NameObject("/Contents")] = contents
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def flate_bomb_pdf(inflated_mb: int = 300) -> bytes:
    """A ~300 KB PDF whose page content inflates to `inflated_mb` MB (pypdf stops with LimitReachedError)."""
    return _pdf_with_content(b"0 " * (inflated_mb * 2**20 // 2))


def slow_pdf(operators: int = 300_000, pages: int = 100) -> bytes:
    """A small PDF whose `pages` pages each show the same `operators` text-showing operators: PDFium spends ~1 us
    on each (~0.3 s a page at 300,000 here: ~30 s in all), pypdf ~0.1 ms."""
    return _pdf_with_content(b"BT /F1 11 Tf 10 10 Td (a) Tj ET\n" * operators, pages=pages)


def javascript_pdf(text: str) -> bytes:
    """A PDF with text and a JavaScript /OpenAction that, if anything ran it, would create a file (it never is)."""
    from fpdf import FPDF
    from pypdf import PdfReader, PdfWriter

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.set_xy(15, 15)
    pdf.multi_cell(180, 6, text)
    from pypdf.generic import DictionaryObject, NameObject, TextStringObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(pdf.output()))))
    action = DictionaryObject({
        NameObject("/S"): NameObject("/JavaScript"),
        NameObject("/JS"): TextStringObject('app.alert("pwned"); this.exportDataObject({cName: "x", nLaunch: 2});'),
    })
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(action)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zero_page_pdf() -> bytes:
    from pypdf import PdfWriter

    out = io.BytesIO()
    PdfWriter().write(out)
    return out.getvalue()


def broken_xref_pdf(text: str) -> bytes:
    """A PDF whose startxref points into the middle of nowhere and whose xref offsets are all wrong."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.set_xy(15, 15)
    pdf.multi_cell(180, 6, text)
    data = bytes(pdf.output())
    head, _, _ = data.rpartition(b"startxref")
    xref_at = head.rfind(b"\nxref\n")
    table = head[xref_at:].replace(b" 00000 n", b" 00000 n", 0)
    table = b"\n".join(b"%010d 00000 n" % 7 if ln.endswith(b" 00000 n") else ln for ln in table.split(b"\n"))
    return head[:xref_at] + table + b"startxref\n99999999\n%%EOF\n"


def zip_as_pdf(inner_pdf: bytes) -> bytes:
    """A zip holding a zip holding a PDF: the bytes of an archive, to be named x.pdf."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("doc.pdf", inner_pdf)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("inner.zip", inner.getvalue())
    return outer.getvalue()


def targz_as_pdf(inner_pdf: bytes) -> bytes:
    """A tar.gz holding a tar holding a PDF."""
    def tar(name: str, data: bytes, mode: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as t:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    return tar("inner.tar", tar("doc.pdf", inner_pdf, "w"), "w:gz")


def deep_html(depth: int = 8_000, text: str = "deep text") -> str:
    """`depth` nested <div>s (8,000: 88-104 KB), the text at the bottom."""
    return "<html><body>" + "<div>x " * depth + text + "</div>" * depth + "</body></html>"
