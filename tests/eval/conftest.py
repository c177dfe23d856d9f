"""Fixtures for the evaluation harness: the tiny corpus on disk and a real index of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eval_fixtures import DOCS

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = tmp_path_factory.mktemp("corpus") / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    return docs


@pytest.fixture(scope="session")
def tiny_index(corpus: Path, embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real index of the three small documents (built once per session)."""
    from rag.api import ingest

    index = tmp_path_factory.mktemp("index") / "idx"
    ingest([corpus], index, embedder=embedder)
    return index
