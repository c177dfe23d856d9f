"""Fixtures for the answering stage: a real index of the lecture corpus and a small mixed corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from rag.config import Config

ROOT = Path(__file__).resolve().parents[2]
LECTURE = ROOT / "corpora" / "lecture" / "docs"


@pytest.fixture(scope="session")
def lecture_index(tmp_path_factory, embedder) -> Path:
    index = tmp_path_factory.mktemp("lecture") / "index"
    report = ingest_paths([LECTURE], index, Config().ingest, embedder=embedder)
    assert report.chunks_total > 5 and not report.failed
    return index


@pytest.fixture(scope="session")
def mixed_index(tmp_path_factory, embedder) -> Path:
    """Three small documents of different types and tenants, for filters and access control."""
    docs = tmp_path_factory.mktemp("mixed")
    (docs / "garden.md").write_text(
        "# Garden guide\n\n## Tomatoes\n\nTomatoes need six hours of direct sun and deep watering twice a week.\n\n"
        "## Roses\n\nPrune roses in late winter, cutting each cane just above an outward-facing bud.\n"
    )
    (docs / "kitchen.html").write_text(
        "<html><head><title>Kitchen notes</title></head><body><nav>Home | About</nav><main>"
        "<h1>Bread</h1><p>Sourdough bread rises for twelve hours at room temperature before baking.</p>"
        "<h2>Tomatoes</h2><p>Roast tomatoes at 200 degrees for forty minutes with olive oil.</p></main></body></html>"
    )
    (docs / "notes.txt").write_text("The observatory telescope has a 40 centimetre mirror and opened in 1998.\n")
    index = tmp_path_factory.mktemp("mixed-index") / "index"
    cfg = Config().ingest
    ingest_paths([docs / "garden.md"], index, cfg, embedder=embedder, tenant="green", tags=("outdoor",))
    ingest_paths([docs / "kitchen.html"], index, cfg, embedder=embedder, tenant="food")
    ingest_paths([docs / "notes.txt"], index, cfg, embedder=embedder, tenant="green", tags=("science",))
    return index

