"""Embedder actors on a Ray cluster with GPUs (ingest.distributed). Its own module, so that its cluster never runs
beside test_ingest_ray's (two clusters on one machine confuse the driver's connection)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from test_ingest_ray import ROOT, _contents, _executor, _in_ci

from ingest.config import EmbeddingConfig, IngestConfig
from ingest.pipeline import ingest_paths

pytestmark = pytest.mark.slow


def test_embedders_go_one_per_gpu_to_the_nodes_that_have_one(tmp_path: Path) -> None:
    """A cluster whose second node declares a GPU: the plan has one embedder holding that whole GPU, so Ray can place
    it only there (it would wait forever anywhere else), and the index is still the local one. This machine has no
    GPU, so the actor's encoder runs on that node's CPU: what is tested is the placement, not CUDA."""
    if importlib.util.find_spec("ray") is None:
        pytest.fail("the Ray tests need Ray") if _in_ci() else pytest.skip("the Ray tests need Ray")
    from ray_cluster import LocalRayCluster

    config = IngestConfig(embedding=EmbeddingConfig(backend="onnx"))
    paths = [ROOT / "corpora" / "lecture" / "docs"]
    local = ingest_paths(paths, tmp_path / "local", config)
    with LocalRayCluster(nodes=2, cpus=1, worker_gpus=1) as c, pytest.MonkeyPatch.context() as mp:
        for key, value in c.client_env.items():
            mp.setenv(key, value)
        executor = _executor(c, config)
        remote = ingest_paths(paths, tmp_path / "ray", config, executor=executor)
    stats = executor.stats
    assert stats.plan is not None and (stats.plan.embedders, stats.plan.gpu_share, stats.plan.loaders) == (1, 1.0, 1)
    assert len(stats.gpu_nodes) == 1 and stats.embedders_on == ((stats.gpu_nodes[0], ("0",)),)
    assert not remote.failed and remote.chunks_added == local.chunks_added > 0
    _, local_chunks, local_vecs = _contents(tmp_path / "local")
    _, ray_chunks, ray_vecs = _contents(tmp_path / "ray")
    assert ray_chunks == local_chunks
    assert max(float(np.abs(ray_vecs[i] - local_vecs[i]).max()) for i in local_chunks) <= 1e-5
