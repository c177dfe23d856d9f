"""Ingestion on a Ray cluster: loader actors parse and chunk files, a pool of embedder actors (one per GPU, CPU
actors where there is none) embeds chunk texts; the ingest process (the Ray driver) stays the one writer.

The driver still scans, reads and hashes every file and ships only new or changed ones, ships only texts without a
cached vector, and commits: skipping, incremental runs and crash safety are the pipeline's (ingest.pipeline), for any
index backend, and an unchanged re-ingest never connects to Ray. Isolation holds on the cluster: a loader actor
parses through its own LoaderPool (ingest.isolation), each file in a worker process under ingest.load_timeout_s and
ingest.load_memory_mb, so a hostile file fails alone, on one line. The driver ships its own `ingest` package to the
cluster (Ray's py_modules); nodes need the third-party packages (pip install "rag[ray]"). Ray is imported only here.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.config import ConfigError, EmbeddingConfig, IngestConfig
from ingest.embedding import UNKNOWN, Embedder, Encoder, encoder_of, load_tokenizer, open_embedder
from ingest.errors import IngestError
from ingest.isolation import LoaderPool
from ingest.rayplan import RayPlan, RayStats
from ingest.worker import EarlyTexts, LoadResult, LoadTask, WorkerSettings, one_line

log = logging.getLogger(__name__)

RAY_EXTRA = 'pip install "rag[ray]"'
EMBED_CALL = 1024  # texts per round of embedding, cut into one contiguous (similar-length) slice per embedder actor
MIN_SLICE = 64  # an actor is never sent fewer texts than this while others idle: a round trip costs ~ms
IN_FLIGHT = 2  # files queued per loader actor: one parsing, one waiting, so an actor never idles on the driver
START_TIMEOUT_S = 600.0  # actors placed and ready (a fresh node may first export the ONNX encoder: ~1 min)
_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "OMP_WAIT_POLICY": "PASSIVE"}


class Loading(Protocol):
    """What the pipeline needs of a loader pool (ingest.isolation.LoaderPool is the local one)."""

    def __enter__(self) -> Loading: ...

    def __exit__(self, *exc: object) -> None: ...

    def map(self, items: Iterable[LoadTask | LoadResult]) -> Iterator[LoadResult | EarlyTexts]: ...

    def ready(self) -> bool:
        """Whether a result is waiting to be taken now."""
        ...


class Executor(Protocol):
    """Where an ingest run parses, chunks and embeds; the run's own process reads, skips, and commits."""

    embed_batch: int  # texts the pipeline hands to one embed() call

    def loader_pool(self, settings: Callable[[], WorkerSettings], timeout_s: float) -> Loading: ...

    def embedder(self, config: EmbeddingConfig, index: Encoder | None) -> Embedder: ...

    def close(self) -> None: ...


def open_executor(config: IngestConfig) -> Executor | None:
    """The executor `ingest.executor` names: None for local (the pipeline's own worker processes)."""
    if config.executor == "local":
        return None
    return RayExecutor(config)


def job_runtime_env() -> dict[str, Any]:
    """The Ray job's runtime environment: this `ingest` package (so the cluster runs the driver's code) and offline
    settings. Pass it to ray.init when your process connects to Ray itself before an ingest (it is then reused)."""
    env = {**_ENV, **{k: os.environ[k] for k in ("RAG_CACHE",) if k in os.environ}}
    return {"py_modules": [str(Path(__file__).resolve().parent)], "env_vars": env}


def import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ConfigError(f"ingest.executor = 'ray' needs Ray, which is not installed ({e}); {RAY_EXTRA}") from None
    return ray


class RayExecutor:
    """Parsing, chunking and embedding of ingest runs on a Ray cluster; connects on the first file to ship."""

    embed_batch = EMBED_CALL

    def __init__(self, config: IngestConfig, address: str | None = None) -> None:
        self._ray = import_ray()  # fails now, naming the extra, rather than after the scan
        self.config = config
        self.address = address or config.ray_address
        self.stats = RayStats()
        self._started_ray = False
        self._embedders: list[RayEmbedder] = []

    def plan(self) -> RayPlan:
        """Connect (once) and size the run to the cluster."""
        if self.stats.plan is not None:
            return self.stats.plan
        t = time.perf_counter()
        ray = self._ray
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                                      "runtime_env": job_runtime_env()}
            try:
                if self.address == "local":
                    ray.init(address="local", include_dashboard=False, **kwargs)  # never a cluster found here
                else:
                    ray.init(address=self.address, **kwargs)
            except Exception as e:  # Ray raises bare Exceptions too (a local node that did not start in its 30 s)
                raise IngestError(f"cannot connect to the Ray cluster at {self.address!r} (ingest.ray_address or "
                                  f"--ray: 'local', 'auto', HOST:PORT or ray://HOST:PORT): {one_line(str(e))}") from e
            self._started_ray = True
        alive = [n for n in ray.nodes() if n.get("Alive")]
        nodes, self.stats.gpu_nodes = len(alive), tuple(n["NodeID"] for n in alive if n["Resources"].get("GPU"))
        self.stats.plan = RayPlan.for_cluster(ray.cluster_resources(), nodes, self.config)
        self.stats.connected = True
        self.stats.start_seconds += time.perf_counter() - t
        log.info("ray: %s, %d node(s); %d loader(s), %d embedder(s)", self.address, nodes, self.stats.plan.loaders,
                 self.stats.plan.embedders)
        return self.stats.plan

    def actor(self, cls: type, num_cpus: float, num_gpus: float = 0.0) -> Any:
        return self._ray.remote(cls).options(num_cpus=num_cpus, num_gpus=num_gpus, scheduling_strategy="SPREAD")

    def loader_pool(self, settings: Callable[[], WorkerSettings], timeout_s: float) -> RayLoaderPool:
        return RayLoaderPool(self, settings, timeout_s)

    def embedder(self, config: EmbeddingConfig, index: Encoder | None) -> RayEmbedder:
        e = RayEmbedder(self, config, index)
        self._embedders.append(e)
        return e

    def prestart_embedders(self) -> None:
        """Load the models while the first files are parsed."""
        for e in self._embedders:
            e.start()

    def ready(self, refs: list[Any], what: str) -> list[Any]:
        """The results of actors' first calls; an error raised in an actor is re-raised as itself."""
        t = time.perf_counter()
        try:
            out = self._ray.get(refs, timeout=START_TIMEOUT_S)
        except self._ray.exceptions.GetTimeoutError as e:
            raise IngestError(f"the Ray cluster at {self.address!r} did not start {len(refs)} {what} within "
                              f"{START_TIMEOUT_S:g} s (free CPUs/GPUs? `ray status` shows them)") from e
        except self._ray.exceptions.RayTaskError as e:
            raise _cause(e) from None
        self.stats.start_seconds += time.perf_counter() - t
        return list(out)

    def close(self) -> None:
        """Stop this run's actors; disconnect if this executor connected (a caller's connection is kept)."""
        for e in self._embedders:
            e.close()
        self._embedders = []
        if self.stats.connected:
            s = self.stats
            log.info("ray: shipped %d file(s) and %d text(s); %.1f s to connect and start actors", s.files_shipped,
                     s.texts_shipped, s.start_seconds)
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False


class RayLoaderPool:
    """Loader actors, each parsing through its own isolated LoaderPool; results in completion order."""

    def __init__(self, executor: RayExecutor, settings: Callable[[], WorkerSettings], timeout_s: float) -> None:
        self._ex, self._settings, self._timeout_s = executor, settings, timeout_s
        self._actors: list[Any] = []
        self._busy: list[int] = []
        self._settings_ref: Any = None

    def __enter__(self) -> RayLoaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        plan = self._ex.plan()
        self._settings_ref = self._ex._ray.put(self._settings())
        self._actors = [self._new_actor(plan) for _ in range(plan.loaders)]
        self._busy = [0] * len(self._actors)
        self._ex.prestart_embedders()
        self._ex.ready([a.ready.remote() for a in self._actors], "loader actors")

    def _new_actor(self, plan: RayPlan) -> Any:
        return self._ex.actor(LoaderActor, plan.cpu_share).remote(self._settings_ref, self._timeout_s)

    def map(self, items: Iterable[LoadTask | LoadResult]) -> Iterator[LoadResult]:
        """Tasks go to the cluster (connecting on the first); results among `items` pass straight through."""
        ray = self._ex._ray
        pending: dict[Any, tuple[int, Any, LoadTask]] = {}
        it = iter(items)
        exhausted = False
        while True:
            while not exhausted and (not self._actors or len(pending) < IN_FLIGHT * len(self._actors)):
                item = next(it, None)
                if item is None:
                    exhausted = True
                elif isinstance(item, LoadResult):
                    yield item
                else:
                    if not self._actors:
                        self._start()
                    slot = min(range(len(self._actors)), key=self._busy.__getitem__)
                    actor = self._actors[slot]
                    pending[actor.load.remote(item)] = (slot, actor, item)
                    self._busy[slot] += 1
                    self._ex.stats.files_shipped += 1
            if not pending:
                return
            # The actor's own pool bounds each file; this bounds a lost cluster.
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=IN_FLIGHT * self._timeout_s + START_TIMEOUT_S)
            if not ready:
                raise IngestError(f"no parsed file came back from the Ray cluster at {self._ex.address!r} within "
                                  f"{IN_FLIGHT * self._timeout_s + START_TIMEOUT_S:g} s")
            slot, actor, task = pending.pop(ready[0])
            self._busy[slot] -= 1
            yield self._result(ready[0], slot, actor, task)

    def ready(self) -> bool:
        """Always: the embedding is the cluster's, so the driver never waits on it (the pipeline keeps buffering)."""
        return True

    def _result(self, ref: Any, slot: int, actor: Any, task: LoadTask) -> LoadResult:
        ray = self._ex._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as e:  # its node or process died: its files fail, a new actor takes over
            log.warning("%s: the Ray actor parsing it was lost (%s)", task.source, one_line(str(e))[:200])
            if self._actors[slot] is actor:
                self._actors[slot] = self._new_actor(self._ex.plan())
            return LoadResult.failed(task.key, task.source, f"crashed: the Ray worker parsing it was lost ({type(e).__name__})")
        except ray.exceptions.RayTaskError as e:  # the pool itself failed (no worker process could start)
            raise _cause(e) from None

    def close(self) -> None:
        for a in self._actors:
            self._ex._ray.kill(a)  # its parser processes die with it (ingest.worker: _die_with_parent)
        self._actors, self._busy = [], []


class RayEmbedder:
    """The Embedder protocol over a pool of embedder actors; each call is cut into one slice per actor.

    The first actor chooses the encoder (`embedding.backend = "auto"` may measure the CPU); the others are pinned to
    the same one, so an index never mixes vector families."""

    def __init__(self, executor: RayExecutor, config: EmbeddingConfig, index: Encoder | None) -> None:
        self._ex, self._config, self._index = executor, config, index
        self.model_id = config.model
        self._tokenizer: tuple[Any, int] | None = None
        self._actors: list[Any] = []
        self._starting: list[Any] = []
        self._info: tuple[int, Encoder] | None = None
        self._next = 0

    @property
    def tokenizer(self) -> Any:
        return self._local_tokenizer()[0]

    @property
    def max_tokens(self) -> int:
        return self._local_tokenizer()[1]

    def _local_tokenizer(self) -> tuple[Any, int]:
        if self._tokenizer is None:  # the same files the actors' models read; chunking needs no model here
            self._tokenizer = load_tokenizer(self._config)
        return self._tokenizer

    @property
    def dim(self) -> int:
        return self._ready()[0]

    @property
    def encoder(self) -> Encoder:
        """UNKNOWN until the actors started: a run that embedded nothing keeps what the manifest recorded."""
        return self._info[1] if self._info is not None else UNKNOWN

    def start(self) -> None:
        """Create the actors and have them load the model, without waiting (all of them, unless `auto` has to
        measure this CPU: then the first chooses and _ready pins the others to its choice)."""
        if not self._actors:
            self._config = self._config.updated(threads=self._config.threads or 1)  # one CPU (or a GPU) per actor
            decided = self._config.backend != "auto" or (self._index is not None and self._index.known)
            self._add(self._config, self._ex.plan().embedders if decided else 1)

    def _add(self, config: EmbeddingConfig, n: int) -> None:
        plan = self._ex.plan()
        for _ in range(n):
            actor = self._ex.actor(EmbedderActor, plan.cpu_share, plan.gpu_share).remote(config, self._index)
            self._actors.append(actor)
            self._starting.append(actor.start.remote())

    def _ready(self) -> tuple[int, Encoder]:
        if self._info is not None:
            return self._info
        self.start()
        infos = self._ex.ready(self._starting[:1], "embedder actors")
        if len(self._actors) < self._ex.plan().embedders:
            enc = infos[0][1]
            backend = "torch" if enc.backend == "torch" else "onnx-int8" if enc.precision == "int8" else "onnx"
            self._add(self._config.updated(backend=backend), self._ex.plan().embedders - len(self._actors))
        infos += self._ex.ready(self._starting[1:], "embedder actors")
        self._starting = []
        families = {(dim, enc.family) for dim, enc in infos}
        if len(families) != 1:
            raise IngestError(f"the Ray embedder actors disagree on the encoder ({sorted(families)}); pin "
                              "embedding.backend (and embedding.device) so that every node makes the same vectors")
        self._info = infos[0]
        self._ex.stats.embedders_on = tuple(self._ex.ready([a.placement.remote() for a in self._actors], "embedders"))
        log.info("ray: %d embedder actor(s), %s; (node, GPUs): %s", len(self._actors), self._info[1].describe(),
                 self._ex.stats.embedders_on)
        return self._info

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised vectors in input order; slices are contiguous, so a length-sorted call stays sorted."""
        dim = self._ready()[0]
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        n = max(1, min(len(self._actors), math.ceil(len(texts) / MIN_SLICE)))
        step = math.ceil(len(texts) / n)
        refs = []
        for i in range(n):
            actor = self._actors[(self._next + i) % len(self._actors)]
            refs.append(actor.embed.remote(texts[i * step:(i + 1) * step]))
        self._next = (self._next + n) % len(self._actors)
        self._ex.stats.texts_shipped += len(texts)
        ray = self._ex._ray
        try:
            parts = ray.get(refs)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
            raise IngestError(f"embedding on the Ray cluster failed; nothing was committed and the vectors made so "
                              f"far are kept for the next run: {one_line(str(e))}") from e
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def close(self) -> None:
        for a in self._actors:
            self._ex._ray.kill(a)
        self._actors, self._starting = [], []


def _cause(e: Exception) -> Exception:
    """The exception raised inside an actor (a ConfigError, an IndexMismatchError ...), as itself."""
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, Exception) else IngestError(one_line(str(e)))


class LoaderActor:
    """On a cluster node: parses files through an isolated LoaderPool (one worker process under the limits)."""

    def __init__(self, settings: WorkerSettings, timeout_s: float) -> None:
        self._pool = LoaderPool(lambda: settings, workers=1, timeout_s=timeout_s)

    def ready(self) -> bool:
        return True

    def load(self, task: LoadTask) -> LoadResult:
        return next(r for r in self._pool.map([task]) if isinstance(r, LoadResult))


class EmbedderActor:
    """On a cluster node: one embedder (a GPU's, with Ray's CUDA_VISIBLE_DEVICES, or the CPU's)."""

    def __init__(self, config: EmbeddingConfig, index: Encoder | None) -> None:
        self._config, self._index = config, index
        self._embedder: Embedder | None = None

    def start(self) -> tuple[int, Encoder]:
        self._embedder = open_embedder(self._config, index=self._index)
        return self._embedder.dim, encoder_of(self._embedder)

    def placement(self) -> tuple[str, tuple[str, ...]]:
        import ray

        context = ray.get_runtime_context()
        return context.get_node_id(), tuple(str(g) for g in context.get_accelerator_ids().get("GPU", ()))

    def embed(self, texts: list[str]) -> np.ndarray:
        assert self._embedder is not None, "start() first"
        return self._embedder.embed(texts)
