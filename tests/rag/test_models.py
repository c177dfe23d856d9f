"""Bundled GGUF models: split parts assembled once into the cache, verified by sha256."""

from __future__ import annotations

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
