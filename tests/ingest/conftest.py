"""Fixtures of the ingestion tests: generated PDFs and small corpora with known text."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

# Words with no meaning in common so retrieval tests can look for them exactly.
SYLLABLES = ["ka", "lo", "mi", "ren", "sa", "tu", "vo", "zel", "pra", "dun", "gor", "hil", "nes", "qua", "bri", "fen"]


def random_text(rnd: random.Random, n_words: int, paragraph_words: int = 60) -> str:
    """Prose-like text of made-up words, in paragraphs and sentences (unique per seed, so chunks are unique)."""
    words: list[str] = []
    for i in range(n_words):
        w = "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(1, 3)))
        if i % 12 == 11:
            w += "."
        words.append(w)
        if i % paragraph_words == paragraph_words - 1:
            words.append("\n\n")
    return " ".join(words).replace(" \n\n ", "\n\n").strip() + "\n"


def _patch_space_width(data: bytes, width: int) -> bytes:
    """Declare `width` (in 1/1000 em) for character code 32 in every font of every page."""
    from fpdf.fonts import CORE_FONTS_CHARWIDTHS
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, NameObject, NumberObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    metrics = CORE_FONTS_CHARWIDTHS["helvetica"]
    widths = [width if c == 32 else metrics.get(chr(c), 500) for c in range(32, 127)]
    for page in writer.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            font[NameObject("/FirstChar")] = NumberObject(32)
            font[NameObject("/LastChar")] = NumberObject(126)
            font[NameObject("/Widths")] = ArrayObject(NumberObject(w) for w in widths)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write_pdf(path: Path, pages: Sequence[str | None], *, lost_spacing: bool = False,
              labels: Sequence[tuple[str, int]] = (), user_password: str | None = None,
              owner_password: str | None = None, title: str | None = None) -> Path:
    """A PDF with the given text per page (None: a blank page).

    lost_spacing: every word is its own text object at an explicit x position, with no space characters, and
    the font declares a 2.5 em wide character 32. pypdf takes the declared space width as the yardstick for
    word gaps, so it glues the words together, as it does on TeX PDFs whose code 32 is not a space; PDFium
    infers the spaces from the glyph geometry. (Checked by the tests that use it.)
    labels: (style, first page index) pairs for page labels, e.g. [("r", 0), ("D", 2)].
    """
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=11)
    if title:
        pdf.set_title(title)
    label_at = dict((i, style) for style, i in labels)
    for i, text in enumerate(pages):
        pdf.add_page()
        if i in label_at:
            pdf.set_page_label(label_style=label_at[i], label_start=1)
        if text is None:
            continue
        if not lost_spacing:
            pdf.set_xy(15, 15)
            pdf.multi_cell(180, 6, text)
            continue
        y = 20.0
        for line in text.splitlines():
            x = 15.0
            for word in line.split():
                w = pdf.get_string_width(word)
                if x + w > 195:
                    x, y = 15.0, y + 6
                pdf.text(x, y, word)
                x += w + 1.5  # a visible gap (1.5 mm), but no space character
            y += 6
    if user_password is not None or owner_password is not None:
        pdf.set_encryption(owner_password=owner_password or "owner", user_password=user_password)
    data = bytes(pdf.output())
    if lost_spacing:
        data = _patch_space_width(data, 2500)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def make_pdf() -> Callable[..., Path]:
    """write_pdf(path, pages, ...) as a fixture."""
    return write_pdf


@pytest.fixture
def text_corpus(tmp_path: Path) -> Callable[..., Path]:
    """Writes {relative path: text} under a fresh folder and returns the folder."""
    counter = iter(range(1_000_000))

    def make(files: dict[str, str | bytes], name: str | None = None) -> Path:
        root = tmp_path / (name or f"corpus{next(counter)}")
        for rel, content in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8")
        return root

    return make


@pytest.fixture(scope="session")
def make_text() -> Callable[..., str]:
    """random_text(seed, n_words): deterministic prose of made-up words, different for each seed."""
    return lambda seed, n_words, paragraph_words=60: random_text(random.Random(seed), n_words, paragraph_words)


@dataclass(frozen=True)
class IndexSnapshot:
    """What an index directory holds, read through a fresh read-only Collection."""

    documents: dict[str, str]  # source -> doc_hash
    chunk_ids: set[int]  # SQLite chunk row ids
    faiss_ids: set[int]  # ids in the committed FAISS file
    generation: int
    problems: list[str]  # Collection.consistency()
    files: list[str]  # names in the index directory
    manifest: dict[str, object]  # the manifest in the store
    n_vectors: int  # cached vectors in the store

    @property
    def consistent(self) -> bool:
        return not self.problems and self.chunk_ids == self.faiss_ids


def snapshot(index_dir) -> IndexSnapshot:  # noqa: ANN001 - a directory or a PostgresTarget
    """What an index holds, through a fresh reader; on PostgreSQL `faiss_ids` are the chunks with an embedding
    (what its HNSW index holds) and `files` is empty."""
    from ingest.backend import PostgresTarget, open_index
    from ingest.collection import Collection

    if isinstance(index_dir, PostgresTarget):
        from index_backends import _sql, vector_ids

        index = open_index(index_dir)
        try:
            with index.snapshot() as view:
                documents = {d.source: d.doc_hash for d in view.documents()}
                n_vectors = view.count("vectors")
            return IndexSnapshot(
                documents=documents, chunk_ids={r[0] for r in _sql(index_dir, "SELECT id FROM chunks")},
                faiss_ids=vector_ids(index_dir), generation=index.generation, problems=index.consistency(), files=[],
                manifest=dict(asdict(index.manifest)) if index.manifest else {}, n_vectors=n_vectors)
        finally:
            index.close()
    coll = Collection(index_dir)
    try:
        return IndexSnapshot(
            documents={d.source: d.doc_hash for d in coll.store.documents()},
            chunk_ids=coll.store.chunk_ids(),
            faiss_ids=set(coll.vectors.ids().tolist()) if coll.vectors is not None else set(),
            generation=coll.generation,
            problems=coll.consistency(),
            files=sorted(p.name for p in Path(index_dir).iterdir()),
            manifest=dict(asdict(coll.manifest)) if coll.manifest else {},
            n_vectors=coll.store.count("vectors"),
        )
    finally:
        coll.close()


@pytest.fixture(scope="session")
def index_snapshot() -> Callable[[Path], IndexSnapshot]:
    """snapshot(index_dir): documents, ids on both sides, generation and consistency problems of an index."""
    return snapshot


def file_hashes(root: Path) -> dict[str, str]:
    """{path relative to root: sha256} of the files under root, as the index should record them."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def corpus_hashes() -> Callable[[Path], dict[str, str]]:
    return file_hashes


@pytest.fixture
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to load the embedding model fail the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the embedding model was loaded, but nothing needed embedding")

    monkeypatch.setattr("ingest.pipeline.open_embedder", refuse)


class HashEmbedder:
    """A fast deterministic embedder with the real tokenizer: a unit seam for fault injection and for tests whose
    subject is not the embedding (the index, the FAISS file and the store stay real). Same model id and
    dimension as the bundled model, so the index it builds is one the real model can open and extend."""

    def __init__(self) -> None:
        from ingest.config import EmbeddingConfig
        from ingest.embedding import load_tokenizer

        config = EmbeddingConfig()
        self.model_id = config.model
        self.dim = 384
        self.tokenizer, self.max_tokens = load_tokenizer(config)
        self.calls: list[int] = []  # batch sizes, in order

    def embed(self, texts: list[str]):
        import numpy as np

        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    """A fresh HashEmbedder (fast, deterministic; records its batch sizes)."""
    return HashEmbedder()
