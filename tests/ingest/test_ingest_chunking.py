"""Chunking: each chunk fits the embedder and points exactly back into its document (page, section, offsets)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.chunking import Chunker
from ingest.config import ConfigError, IngestConfig
from ingest.loaders import load
from ingest.records import Chunk, Document

pytestmark = pytest.mark.slow  # uses the real embedding model's tokenizer (session fixture)


_UNTRUNCATED: dict[int, tuple[object, object]] = {}  # id of a shared Rust tokenizer -> (it, its untruncated copy)


def _word_pieces(embedder, text: str) -> int:
    tok = embedder.tokenizer  # transformers' tokenizer (torch backend) or the Rust tokenizers.Tokenizer (ONNX)
    if hasattr(tok, "tokenize"):
        return len(tok.tokenize(text))
    if _UNTRUNCATED.get(id(tok), (None,))[0] is not tok:  # the shared one truncates at the model's length
        from tokenizers import Tokenizer

        copy = Tokenizer.from_str(tok.to_str())
        copy.no_truncation()
        _UNTRUNCATED[id(tok)] = (tok, copy)
    return len(_UNTRUNCATED[id(tok)][1].encode(text, add_special_tokens=False).ids)


def _check_provenance(doc: Document, chunks: list[Chunk], data: bytes, chunk_size: int, embedder) -> None:
    text = doc.text
    assert chunks, doc.source
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    for c in chunks:
        assert text[c.start:c.end] == c.text, (doc.source, c.ordinal)
        assert c.source == doc.source and c.kind == doc.kind and c.title == doc.title
        assert c.doc_hash == doc.doc_hash == hashlib.sha256(data).hexdigest()
        assert c.text_hash == hashlib.sha256(c.text.encode()).hexdigest()
        assert _word_pieces(embedder, c.text) <= chunk_size, (doc.source, c.ordinal)
        # The chunk lies inside exactly one section and carries its page and heading path.
        sec = next(s for s in doc.sections if s.start <= c.start and c.end <= s.start + len(s.text))
        assert (c.page, c.section, c.page_label) == (sec.page, sec.section, sec.page_label)
    # Nothing is lost: every non-blank character of every section is inside some chunk.
    for sec in doc.sections:
        covered = bytearray(len(sec.text))
        for c in chunks:
            lo, hi = max(c.start, sec.start) - sec.start, min(c.end, sec.start + len(sec.text)) - sec.start
            if lo < hi:
                covered[lo:hi] = b"\x01" * (hi - lo)
        missing = [ch for ch, cov in zip(sec.text, covered, strict=True) if not cov and not ch.isspace()]
        assert not missing, (doc.source, sec.section, "".join(missing[:80]))


@pytest.fixture
def mixed_docs(tmp_path: Path, make_pdf: Callable[..., Path], make_text: Callable[..., str]) -> list[tuple[Path, str]]:
    """A PDF, a Markdown file, an HTML page and a text file, each long enough for several chunks per section."""
    pdf = make_pdf(tmp_path / "manual.pdf", [make_text(1, 350), None, make_text(2, 400)])
    md = tmp_path / "guide.md"
    md.write_text(f"# Guide\n\n{make_text(3, 300)}\n## Install\n\n{make_text(4, 500)}\n### Linux\n\nshort\n")
    html = tmp_path / "page.html"
    paras = "".join(f"<p>{make_text(10 + i, 80)}</p>" for i in range(6))
    html.write_text(f"<html><head><title>T</title></head><body><h1>One</h1>{paras}<h2>Two</h2>{paras}</body></html>")
    txt = tmp_path / "notes.txt"
    txt.write_text(make_text(5, 1500, paragraph_words=10_000))  # one long paragraph: split at sentences and words
    return [(pdf, "manual.pdf"), (md, "guide.md"), (html, "page.html"), (txt, "notes.txt")]


@pytest.mark.parametrize(("chunk_size", "overlap"), [(200, 30), (48, 12), (16, 0)])
def test_chunks_fit_the_embedder_and_offsets_point_into_the_document(
        embedder, mixed_docs: list[tuple[Path, str]], chunk_size: int, overlap: int) -> None:
    embedder.embed(["x " * 600])  # leaves truncation set on the shared tokenizer: counting must not be affected
    config = IngestConfig(chunk_size=chunk_size, chunk_overlap=overlap)
    chunker = Chunker(embedder.tokenizer, config, embedder.max_tokens)
    for path, source in mixed_docs:
        data = path.read_bytes()
        doc = load(path, source, data)
        chunks = chunker.split(doc, tenant="acme", tags=("t1",))
        _check_provenance(doc, chunks, data, chunk_size, embedder)
        assert all(c.tenant == "acme" and c.tags == ("t1",) for c in chunks)
        if source == "manual.pdf":
            assert {c.page for c in chunks} == {1, 3}
        if source == "guide.md":
            assert [s for s in dict.fromkeys(c.section for c in chunks)] == ["Guide", "Guide > Install",
                                                                             "Guide > Install > Linux"]
        if source == "notes.txt":
            assert len(chunks) >= 1500 * 2 // chunk_size
            if not overlap:
                assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))


@pytest.mark.parametrize("overlap", [0, 12])
def test_consecutive_chunks_overlap_by_at_most_chunk_overlap_word_pieces(embedder, overlap: int) -> None:
    words = " ".join(f"word{i % 97} item{i}" for i in range(1200))  # no sentences: split between words
    doc = load(Path("w.txt"), "w.txt", words.encode())
    chunks = Chunker(embedder.tokenizer, IngestConfig(chunk_size=48, chunk_overlap=overlap),
                     embedder.max_tokens).split(doc)
    _check_provenance(doc, chunks, words.encode(), 48, embedder)
    for a, b in zip(chunks, chunks[1:], strict=False):
        shared = words[b.start:a.end] if b.start < a.end else ""
        assert _word_pieces(embedder, shared) <= overlap
        if overlap:
            assert shared.strip(), "expected the chunks to overlap"


def test_offsets_are_exact_when_the_same_text_repeats(embedder) -> None:
    para = "The walrus eats clams at noon. " * 12
    data = "\n\n".join([para.strip()] * 8).encode()
    doc = load(Path("rep.txt"), "rep.txt", data)
    chunks = Chunker(embedder.tokenizer, IngestConfig(chunk_size=40, chunk_overlap=10), embedder.max_tokens).split(doc)
    _check_provenance(doc, chunks, data, 40, embedder)
    assert [c.start for c in chunks] == sorted({c.start for c in chunks})  # strictly increasing
    assert len({c.text_hash for c in chunks}) < len(chunks)  # identical texts: one hash, several places


def test_count_tokens_matches_the_tokenizer(embedder) -> None:
    chunker = Chunker(embedder.tokenizer, IngestConfig(), embedder.max_tokens)
    embedder.embed(["short"])  # the shared tokenizer now pads and truncates; the chunker's counts must not
    for text in ["", "café", "a", "unbelievably " * 300, "日本語のテキスト", "x" * 500, "C++ & Rust: 3.14!"]:
        assert chunker.count_tokens(text) == _word_pieces(embedder, text), text


def test_chunk_size_beyond_the_model_window_is_refused(embedder) -> None:
    with pytest.raises(ConfigError, match="exceeds what the embedder reads"):
        Chunker(embedder.tokenizer, IngestConfig(chunk_size=255, chunk_overlap=0), embedder.max_tokens)
    Chunker(embedder.tokenizer, IngestConfig(chunk_size=embedder.max_tokens - 2, chunk_overlap=0),
            embedder.max_tokens)


def test_a_huge_single_line_is_chunked_in_bounded_time(embedder, make_text: Callable[..., str]) -> None:
    line = " ".join(" ".join(make_text(seed, 20_000).split()) for seed in range(17))  # over 2 MB, no newline
    assert "\n" not in line and len(line) > 2_000_000
    doc = load(Path("huge.txt"), "huge.txt", line.encode())
    t = time.perf_counter()
    chunks = Chunker(embedder.tokenizer, IngestConfig(), embedder.max_tokens).split(doc)
    seconds = time.perf_counter() - t
    assert seconds < 30, f"chunking {len(line) / 1e6:.1f} MB took {seconds:.1f} s"
    assert chunks[0].start == 0 and chunks[-1].end == len(line)
    sample = chunks[:: max(1, len(chunks) // 50)]
    assert all(line[c.start:c.end] == c.text for c in chunks)
    assert all(_word_pieces(embedder, c.text) <= 200 for c in sample)
