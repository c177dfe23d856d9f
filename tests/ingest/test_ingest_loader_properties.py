"""Property-based tests of the loaders: whatever the bytes, a loader returns a Document whose offsets are exact or
raises LoaderError (nothing else), within a bounded time; chunk offsets stay exact too."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import Chunker
from ingest.config import IngestConfig
from ingest.errors import LoaderError
from ingest.loaders import load
from ingest.records import Document

LIMIT_S = 5  # CPU seconds per example: a loader that takes longer is hanging (CPU, so a loaded machine is no excuse)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"the loader took longer than {seconds} s of CPU")

    old = signal.signal(signal.SIGPROF, hang)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    from ingest.embedding import load_tokenizer

    tokenizer, max_tokens = load_tokenizer(IngestConfig().embedding)
    return Chunker(tokenizer, IngestConfig(chunk_size=32, chunk_overlap=8), max_tokens)


def _check(name: str, data: bytes, chunker: Chunker | None = None) -> Document | None:
    """Load; only LoaderError may come out, in time; offsets of sections (and chunks) index the document text."""
    try:
        with time_limit(LIMIT_S):
            doc = load(Path(name), name, data)
            chunks = chunker.split(doc) if chunker is not None else []
    except LoaderError as e:
        assert e.source == name and e.reason and "\n" not in e.reason
        return None
    text = doc.text
    for s in doc.sections:
        assert s.text and text[s.start:s.start + len(s.text)] == s.text
    for c in chunks:
        assert text[c.start:c.end] == c.text
    return doc


# --- random bytes under every extension -------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=4096), ext=st.sampled_from([".txt", ".md", ".html", ".rst", ".htm", ".markdown"]))
def test_random_bytes_never_crash_a_text_loader(data: bytes, ext: str) -> None:
    _check("f" + ext, data)


@FAST
@given(data=st.binary(max_size=2048), head=st.sampled_from([b"", b"%PDF-1.4\n", b"%PDF-1.7\n1 0 obj\n<<"]))
def test_random_bytes_never_crash_the_pdf_loader(data: bytes, head: bytes) -> None:
    _check("f.pdf", head + data)


# --- random text -------------------------------------------------------------------------------------


@FAST
@given(text=st.text(max_size=1500))
def test_random_text_loads_with_exact_offsets(text: str, chunker: Chunker) -> None:
    doc = _check("t.txt", text.encode("utf-8"), chunker)
    if doc is not None and text.strip() and "\x00" not in text:
        assert doc.sections[0].text == text.replace("\r\n", "\n").lstrip("\ufeff").strip()


# --- random Markdown -----------------------------------------------------------------------------------

_words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40)
_md_line = st.one_of(
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 7), _words),
    st.builds(lambda t: t + "\n" + "=" * 3, _words),  # a setext heading
    st.builds(lambda t: "- " + t, _words),
    st.builds(lambda t: "> " + t, _words),
    st.builds(lambda t: "```\n" + t + "\n```", _words),
    st.just("```"),  # an unclosed fence
    st.builds(lambda t: "    " + t, _words),
    st.builds(lambda t: f"[{t}]({t})", _words),
    st.just(""),
    _words,
)


@FAST
@given(lines=st.lists(_md_line, max_size=40), crlf=st.booleans())
def test_random_markdown_loads_with_exact_offsets(lines: list[str], crlf: bool, chunker: Chunker) -> None:
    text = "\n".join(lines)
    _check("m.md", (text.replace("\n", "\r\n") if crlf else text).encode("utf-8"), chunker)


# --- random HTML -----------------------------------------------------------------------------------------

_TAGS = ["div", "p", "span", "main", "article", "nav", "h1", "h2", "h3", "table", "tr", "td", "th", "ul", "li", "br",
         "script", "style", "footer", "aside", "section", "pre", "b", "a", "template", "svg"]
_ATTRS = st.sampled_from(["", ' class="sidebar"', ' class="content"', ' id="toc"', ' role="navigation"',
                          ' role="main"', " hidden", ' class="nav-menu x"', ' id="main"'])
_html_text = st.text(alphabet=st.sampled_from(list("abc xyz<>&;\"'\n\t/=!-#é")), max_size=20)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def build(tag: str, attrs: str, inner: list[str], closed: bool) -> str:
        return f"<{tag}{attrs}>" + "".join(inner) + (f"</{tag}>" if closed else "")

    return st.builds(build, st.sampled_from(_TAGS), _ATTRS, st.lists(children, max_size=4), st.booleans())


_html = st.recursive(_html_text, _element, max_leaves=40)


@FAST
@given(body=st.lists(_html, max_size=6), title=st.one_of(st.none(), _html_text))
def test_random_html_loads_with_exact_offsets(body: list[str], title: str | None, chunker: Chunker) -> None:
    head = f"<head><title>{title}</title></head>" if title is not None else ""
    _check("h.html", f"<html>{head}<body>{''.join(body)}</body></html>".encode(), chunker)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(depth=st.integers(1_000, 30_000), tag=st.sampled_from(["div", "span", "li", "nav", "table"]))
def test_deeply_nested_html_loads_in_linear_time(depth: int, tag: str) -> None:
    html = "<html><body>" + f"<{tag}>x " * depth + "bottom" + f"</{tag}>" * depth + "</body></html>"
    _check("deep.html", html.encode())  # within LIMIT_S: 8,000 levels took 33 s before
