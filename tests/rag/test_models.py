"""Bundled GGUF models: split parts assembled once into the cache, verified by sha256."""

from __future__ import annotations

import ctypes
import hashlib

import pytest

from rag.errors import LLMConfigError
from rag.llm import models
from rag.llm.models import BundledModel, resolve_gguf


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    parts = {f"pkg{i}": tmp_path / f"part{i}.bin" for i in range(1, 4)}
    for i, path in enumerate(parts.values()):
        path.write_bytes(bytes([i]) * 1000)
    monkeypatch.setattr(models, "_part_file", lambda package, suffix: parts[package])
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path / "cache"))
    whole = b"".join(p.read_bytes() for p in parts.values())
    return tuple(parts), hashlib.sha256(whole).hexdigest(), whole


def test_split_model_is_assembled_in_order_and_verified(fake_parts, monkeypatch, tmp_path):
    packages, digest, whole = fake_parts
    monkeypatch.setitem(models.BUNDLED_MODELS, "fake", BundledModel("fake", "fake.gguf", packages, ".bin", digest))
    path = resolve_gguf("fake")
    assert path == tmp_path / "cache" / "fake.gguf" and path.read_bytes() == whole
    assert (tmp_path / "cache" / "fake.sha256").read_text().strip() == digest
    assert resolve_gguf("fake") == path  # second call reuses the cache


def test_wrong_checksum_is_refused_and_nothing_is_left(fake_parts, monkeypatch, tmp_path):
    packages, _, _ = fake_parts
    monkeypatch.setitem(models.BUNDLED_MODELS, "fake", BundledModel("fake", "fake.gguf", packages, ".bin", "0" * 64))
    with pytest.raises(LLMConfigError, match="sha256"):
        resolve_gguf("fake")
    assert not list((tmp_path / "cache").glob("fake*"))


def test_unknown_model_lists_the_bundled_ones():
    with pytest.raises(LLMConfigError, match="qwen2.5-1.5b.*smollm2-135m"):
        resolve_gguf("gpt-5")


def test_default_model_resolves_to_a_verified_gguf():
    path = resolve_gguf("qwen2.5-1.5b")
    assert path.suffix == ".gguf" and path.stat().st_size > 900_000_000
    with open(path, "rb") as fh:
        assert fh.read(4) == b"GGUF"


@pytest.mark.parametrize(("kind", "ftype"), [("q4_0", "LLAMA_FTYPE_MOSTLY_Q4_0")])  # IQ4_NL: minutes to convert
def test_requantize_converts_the_default_model_once(tmp_path, monkeypatch, kind, ftype):
    import llama_cpp

    shipped = resolve_gguf("qwen2.5-1.5b")
    assert resolve_gguf("qwen2.5-1.5b", "") == shipped  # "" = as shipped
    monkeypatch.setattr(models, "_bundled_or_path", lambda model: shipped)  # not assembled again in tmp_path
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path))
    path = resolve_gguf("qwen2.5-1.5b", kind)
    assert path.parent == tmp_path and path.name == f"{shipped.stem}.{kind}.gguf"
    assert 0.9 * shipped.stat().st_size < path.stat().st_size < shipped.stat().st_size
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
    try:
        buf = ctypes.create_string_buffer(64)
        assert llama_cpp.llama_model_meta_val_str(model, b"general.file_type", buf, 64) > 0
        assert int(buf.value) == getattr(llama_cpp, ftype)
    finally:
        llama_cpp.llama_model_free(model)
    stamp = path.with_name(path.name + ".source").read_text()
    assert stamp.startswith(f"{shipped.name}:{shipped.stat().st_size}:llama-cpp-python ")
    mtime = path.stat().st_mtime_ns
    assert resolve_gguf("qwen2.5-1.5b", kind) == path and path.stat().st_mtime_ns == mtime  # not converted again
    from rag.config import LocalLLMConfig
    from rag.llm.local import LocalLLM

    llm = LocalLLM(LocalLLMConfig(requantize=kind, n_ctx=256))
    try:  # answers and results.jsonl name the converted model
        assert llm.model == f"qwen2.5-1.5b.{kind}" and path.stat().st_mtime_ns == mtime
    finally:
        llm.close()


def test_requantize_leaves_other_models_as_shipped_and_refuses_unknown_types(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path))
    small = resolve_gguf("smollm2-135m")
    assert resolve_gguf("smollm2-135m", "q4_0") == small  # Q4_1 already: used as given
    for model in ("qwen2.5-1.5b", "smollm2-135m"):  # an unknown type is refused whatever the model
        with pytest.raises(LLMConfigError, match=r"requantize 'q2_k' is not known; allowed: .*'q4_0'"):
            resolve_gguf(model, "q2_k")


def test_a_failed_conversion_says_so_and_leaves_no_file(tmp_path, monkeypatch):
    import llama_cpp

    shipped = resolve_gguf("qwen2.5-1.5b")
    monkeypatch.setattr(models, "_bundled_or_path", lambda model: shipped)
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path))
    monkeypatch.setattr(llama_cpp, "llama_model_quantize", lambda src, dst, params: 1)
    with pytest.raises(LLMConfigError, match=r"converting .* to q4_0 failed .*requantize = \"\""):
        resolve_gguf("qwen2.5-1.5b", "q4_0")
    assert not list(tmp_path.iterdir())
