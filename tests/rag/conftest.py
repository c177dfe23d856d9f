"""Fixtures for the answering stage: a real index of the lecture corpus and a small mixed corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
from index_backends import BACKENDS, pg_target

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
    return build_mixed(tmp_path_factory, embedder, tmp_path_factory.mktemp("mixed-index") / "index")


def build_mixed(tmp_path_factory, embedder, index):  # noqa: ANN001, ANN201
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
    cfg = Config().ingest
    ingest_paths([docs / "garden.md"], index, cfg, embedder=embedder, tenant="green", tags=("outdoor",))
    ingest_paths([docs / "kitchen.html"], index, cfg, embedder=embedder, tenant="food")
    ingest_paths([docs / "notes.txt"], index, cfg, embedder=embedder, tenant="green", tags=("science",))
    return index


def _target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str):  # noqa: ANN202
    if request.param == "embedded":
        return tmp_path_factory.mktemp(name) / "index"
    request.getfixturevalue("postgres")
    return pg_target(name)


@pytest.fixture(scope="session", params=BACKENDS)
def lecture_target(request: pytest.FixtureRequest, tmp_path_factory, embedder):  # noqa: ANN001, ANN201
    """The lecture corpus on each index backend: an index directory, then a PostgreSQL schema."""
    if request.param == "embedded":
        return request.getfixturevalue("lecture_index")
    target = _target(request, tmp_path_factory, "lecture")
    report = ingest_paths([LECTURE], target, Config().ingest, embedder=embedder)
    assert report.chunks_total > 5 and not report.failed
    return target


@pytest.fixture(scope="session", params=BACKENDS)
def mixed_target(request: pytest.FixtureRequest, tmp_path_factory, embedder):  # noqa: ANN001, ANN201
    """The mixed corpus (tenants, tags, three formats) on each index backend."""
    if request.param == "embedded":
        return request.getfixturevalue("mixed_index")
    return build_mixed(tmp_path_factory, embedder, _target(request, tmp_path_factory, "mixed"))
