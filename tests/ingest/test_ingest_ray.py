"""Distributed ingestion (ingest.distributed) on a real Ray cluster: a head and a second node on this machine, one
CPU each, so one loader actor and one embedder actor on different nodes. The index it builds is the local one;
a hostile file costs one failed line; unchanged files never reach the cluster.

Few tests on purpose: the cluster takes ~30-60 s to start on a loaded 2-core machine. In CI (CI set) a missing
Ray fails them instead of skipping."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.config import EmbeddingConfig, IngestConfig
from ingest.pipeline import ingest_paths

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CORPORA = ("lecture", "r-data-manual")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """The two-node cluster; its token is in this process's environment (and so in the CLI's) while it runs. Ray
    reads its authentication settings when imported: so it is imported after they are set (by the executor)."""
    if importlib.util.find_spec("ray") is None:
        message = "the Ray tests need Ray: pip install -e '.[test]' (or '.[ray]')"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    from ray_cluster import LocalRayCluster

    with LocalRayCluster(nodes=2, cpus=1) as c, pytest.MonkeyPatch.context() as mp:
        for key, value in c.client_env.items():
            mp.setenv(key, value)
        yield c


def _executor(cluster: object, config: IngestConfig):  # noqa: ANN202 - a RayExecutor
    from ingest.distributed import RayExecutor

    return RayExecutor(config.updated(executor="ray", ray_address=cluster.address))  # type: ignore[attr-defined]


def _contents(index: Path) -> tuple[dict[str, str], dict[str, tuple], dict[str, np.ndarray]]:
    """(source -> doc hash, chunk id -> provenance and text hash, chunk id -> vector) read from the store."""
    db = sqlite3.connect(f"file:{index / 'store.sqlite'}?mode=ro", uri=True)
    try:
        docs = dict(db.execute("SELECT source, doc_hash FROM documents"))
        chunks = {row[0]: row[1:] for row in db.execute(
            'SELECT c.chunk_id, d.source, c.ordinal, c.text_hash, c.start, c."end", c.page, c.section '
            "FROM chunks c JOIN documents d ON d.id = c.doc_id")}
        vectors = {cid: np.frombuffer(blob, dtype=np.float32) for cid, blob in db.execute(
            "SELECT c.chunk_id, v.vector FROM chunks c JOIN vectors v ON v.text_hash = c.text_hash")}
    finally:
        db.close()
    return docs, chunks, vectors


def test_an_index_built_on_the_cluster_is_the_local_index(cluster, tmp_path: Path) -> None:
    # fp32 ONNX on both sides (int8 encodes one text per call since f537eef, so it would match too; fp32 is the
    # stricter comparison of the two pipelines, free of quantisation noise).
    config = IngestConfig(embedding=EmbeddingConfig(backend="onnx"))
    paths = [ROOT / "corpora" / name / "docs" for name in CORPORA]
    local = ingest_paths(paths, tmp_path / "local", config)
    executor = _executor(cluster, config)
    remote = ingest_paths(paths, tmp_path / "ray", config, executor=executor)

    assert not local.failed and not remote.failed
    assert (remote.added, remote.chunks_added, remote.chunks_embedded) == (
        local.added, local.chunks_added, local.chunks_embedded)
    stats = executor.stats
    assert stats.plan is not None and stats.plan.nodes == 2 and (stats.plan.loaders, stats.plan.embedders) == (1, 1)
    assert stats.files_shipped == len(paths) and stats.texts_shipped == local.chunks_embedded

    local_docs, local_chunks, local_vecs = _contents(tmp_path / "local")
    ray_docs, ray_chunks, ray_vecs = _contents(tmp_path / "ray")
    assert ray_docs == local_docs and ray_chunks == local_chunks  # same ids, text hashes, offsets, pages, sections
    ids = sorted(local_chunks)
    worst = float(np.abs(np.stack([ray_vecs[i] for i in ids]) - np.stack([local_vecs[i] for i in ids])).max())
    assert worst <= 1e-5, worst

    from rag.api import open_pipeline
    from rag.config import Config

    questions = [json.loads(line)["question"] for name in CORPORA
                 for line in (ROOT / "corpora" / name / "questions" / "dev.jsonl").read_text().splitlines() if line]
    top: dict[str, list[list[str]]] = {}
    for side in ("local", "ray"):
        with open_pipeline(tmp_path / side, Config(ingest=config)) as rag:
            top[side] = [[h.chunk.chunk_id for h in rag.retrieve(q, k=5)] for q in questions]
    assert top["ray"] == top["local"]
    manifests = [json.loads((tmp_path / side / "manifest.json").read_text()) for side in ("local", "ray")]
    assert [(m["embedding_backend"], m["embedding_precision"]) for m in manifests] == [("onnx", "fp32")] * 2


def test_a_hostile_file_costs_one_line_and_unchanged_files_never_reach_the_cluster(cluster, rag_cli, make_text,
                                                                                   tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Walruses haul out on the ice floes in late spring.\n")
    (docs / "long.md").write_text("# Notes\n\n" + make_text(7, 900))  # several chunks
    words = " ".join(["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma"] * 200_000)  # 8 MB, one line
    (docs / "m-big.txt").write_text(words)
    index = tmp_path / "index"

    # Through the command line, as a user runs it: the parser on the cluster runs out of its 64 MiB.
    out = rag_cli.run(["ingest", docs, "--index", index, "--ray", cluster.address], timeout=1800,
                      extra_env={"RAG_INGEST__LOAD_MEMORY_MB": "64"})
    assert out.returncode == 2, out.stderr[-3000:]
    failed = [line for line in out.stderr.splitlines() if line.startswith("failed:")]
    assert failed == ["failed: m-big.txt: needed more than 64 MiB of memory (ingest.load_memory_mb)"], out.stderr
    assert "2 added" in out.stdout and "1 failed" in out.stdout, out.stdout

    (docs / "m-big.txt").unlink()
    config = IngestConfig()
    unchanged = _executor(cluster, config)
    report = ingest_paths([docs], index, config, executor=unchanged)
    assert report.unchanged == ["a.txt", "long.md"] and not report.added and not report.failed
    assert not unchanged.stats.connected and unchanged.stats.files_shipped == 0 and unchanged.stats.texts_shipped == 0

    # One file grows: only it is shipped, and only its chunks without a vector are embedded. Through the command
    # line again, the cluster chosen by configuration alone ([ingest] executor = "ray", ray_address, here from the
    # environment as a deployment sets them; no --ray), its executor's log lines read from stderr as JSON.
    with (docs / "long.md").open("a") as fh:
        fh.write("\n\n" + make_text(8, 120))
    out = rag_cli.run(["-v", "--log-format", "json", "ingest", docs, "--index", index, "--json"], timeout=1800,
                      extra_env={"RAG_INGEST__EXECUTOR": "ray", "RAG_INGEST__RAY_ADDRESS": cluster.address})
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["updated_files"] == ["long.md"] and report["unchanged_files"] == ["a.txt"], report
    logged = [json.loads(line)["message"] for line in out.stderr.splitlines() if line.startswith('{"time"')]
    assert f"ray: {cluster.address}, 2 node(s); 1 loader(s), 1 embedder(s)" in logged, logged
    shipped = [m for m in logged if m.startswith("ray: shipped ")]
    assert shipped and shipped[0].startswith(f"ray: shipped 1 file(s) and {report['chunks_embedded']} text(s);"), logged
    assert 0 < report["chunks_embedded"] < report["chunks_added"], report


def test_a_cluster_ingest_into_postgres_is_the_local_index(cluster, postgres, embedder, tmp_path: Path) -> None:
    """The shared deployment: Ray parses and embeds, the driver commits into PostgreSQL. Same chunks (provenance and
    text hashes) and vectors as a local ingest into an index directory, the same nearest chunks through the
    backend's own search, and a re-ingest of unchanged files ships nothing to the cluster."""
    from index_backends import chunk_rows, dense_top, pg_target, stored_vector

    config = IngestConfig(embedding=EmbeddingConfig(backend="onnx"))
    paths = [ROOT / "corpora" / "lecture" / "docs"]
    local_dir, shared = tmp_path / "local", pg_target("ray")
    local = ingest_paths(paths, local_dir, config)
    executor = _executor(cluster, config)
    remote = ingest_paths(paths, shared, config, executor=executor)
    assert not local.failed and not remote.failed and remote.chunks_added == local.chunks_added > 0
    assert executor.stats.files_shipped == len(list(paths[0].iterdir()))

    def by_hash(target: object) -> dict[tuple, int]:  # (source, start, end, text hash, page, section) -> chunk id
        return {(r[0], r[4], r[5], r[6], r[2], r[3]): cid for cid, r in chunk_rows(target).items()}

    local_rows, shared_rows = by_hash(local_dir), by_hash(shared)
    assert set(shared_rows) == set(local_rows)
    worst = max(float(np.abs(stored_vector(shared, shared_rows[key]) - stored_vector(local_dir, cid)).max())
                for key, cid in local_rows.items())
    assert worst <= 1e-5, worst
    for question in ("When did GANs appear?", "What is a diffusion model?", "Which week covers transformers?"):
        assert [(s, t) for s, t, _ in dense_top(shared, embedder, question, k=5)] == \
            [(s, t) for s, t, _ in dense_top(local_dir, embedder, question, k=5)]

    again = _executor(cluster, config)
    report = ingest_paths(paths, shared, config, executor=again)
    assert report.unchanged and not report.added and not report.updated and not report.failed
    assert not again.stats.connected and again.stats.files_shipped == 0

