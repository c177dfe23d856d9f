"""How a Ray cluster's resources become actors (ingest.rayplan.RayPlan), without a cluster: one embedder per GPU
where the cluster has GPUs, half the CPUs otherwise, loaders on the rest, and shares that always fit."""

from __future__ import annotations

import pytest

from ingest.config import IngestConfig
from ingest.errors import IngestError
from ingest.rayplan import RayPlan


def test_one_embedder_per_gpu_each_holding_a_whole_gpu() -> None:
    plan = RayPlan.for_cluster({"CPU": 32.0, "GPU": 4.0}, nodes=2, config=IngestConfig())
    assert (plan.embedders, plan.gpu_share) == (4, 1.0)
    assert plan.loaders == 28 and plan.cpu_share == 1.0 and plan.nodes == 2


def test_without_gpus_half_the_cpus_embed_and_the_rest_parse() -> None:
    plan = RayPlan.for_cluster({"CPU": 8.0}, nodes=1, config=IngestConfig())
    assert (plan.loaders, plan.embedders, plan.gpu_share, plan.cpu_share) == (4, 4, 0.0, 1.0)


def test_asked_for_more_actors_than_resources_they_share_them_instead_of_waiting_forever() -> None:
    config = IngestConfig().updated(ray_embedders=8, ray_loaders=8)
    plan = RayPlan.for_cluster({"CPU": 4.0, "GPU": 2.0}, nodes=1, config=config)
    assert (plan.loaders, plan.embedders) == (8, 8)
    assert plan.cpu_share * (plan.loaders + plan.embedders) <= 4.0 and plan.gpu_share * plan.embedders <= 2.0


def test_a_cluster_without_cpus_is_a_clear_error() -> None:
    with pytest.raises(IngestError, match="has no CPUs"):
        RayPlan.for_cluster({"GPU": 1.0}, nodes=1, config=IngestConfig().updated(ray_address="ray://head:10001"))
