"""What a Ray ingest run asks of a cluster (RayPlan: how its resources become actors) and what it sent there
(RayStats). Plain data, without Ray: ingest.distributed runs the plan."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.config import IngestConfig
from ingest.errors import IngestError


@dataclass(frozen=True)
class RayPlan:
    """The actors of a run on a cluster with the given resources, and the share of a CPU (GPU) each holds."""

    loaders: int
    embedders: int
    cpu_share: float
    gpu_share: float  # 0: embedders run on CPUs
    nodes: int

    @classmethod
    def for_cluster(cls, resources: dict[str, float], nodes: int, config: IngestConfig) -> RayPlan:
        cpus, gpus = float(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        if cpus <= 0:
            raise IngestError(f"the Ray cluster at {config.ray_address!r} has no CPUs to parse files on")
        embedders = config.ray_embedders or (gpus or max(1, int(cpus) // 2))
        loaders = config.ray_loaders or max(1, int(cpus) - embedders)
        # Shares that always fit: more actors than CPUs (or GPUs) would wait for each other forever.
        return cls(loaders, embedders, cpu_share=min(1.0, cpus / (loaders + embedders)),
                   gpu_share=min(1.0, gpus / embedders) if gpus else 0.0, nodes=nodes)


@dataclass
class RayStats:
    """What a run sent to the cluster (read by tests and benchmarks; logged when the run ends)."""

    connected: bool = False
    files_shipped: int = 0
    texts_shipped: int = 0
    start_seconds: float = 0.0  # connecting and placing the actors
    plan: RayPlan | None = None
    gpu_nodes: tuple[str, ...] = ()  # ids of the alive nodes with GPUs
    embedders_on: tuple[tuple[str, tuple[str, ...]], ...] = ()  # each embedder actor's (node id, GPU ids Ray gave it)
