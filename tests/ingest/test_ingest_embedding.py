"""The embedding backends: device auto on a CPU, the int8 ONNX encoder's quality gate, its cached and verified
export, the encoder recorded in the manifest (a different family is refused), FAISS memory-mapped for readers, and
a query process that never imports torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.config import EmbeddingConfig, IngestConfig
from ingest.embedding import Encoder, gpu_present, open_embedder, resolve_device
from ingest.errors import IndexMismatchError

pytestmark = pytest.mark.slow  # loads the real model (torch and ONNX)

ROOT = Path(__file__).resolve().parents[2]
LECTURE = ROOT / "corpora" / "lecture"


@pytest.fixture(scope="module")
def fp32():
    return open_embedder(EmbeddingConfig(backend="torch", device="cpu"))


@pytest.fixture(scope="module")
def int8():
    return open_embedder(EmbeddingConfig(backend="onnx-int8"))


@pytest.fixture(scope="module")
def int8_index(tmp_path_factory, int8) -> Path:
    from ingest.pipeline import ingest_paths

    index = tmp_path_factory.mktemp("int8") / "index"
    ingest_paths([LECTURE / "docs"], index, IngestConfig(), embedder=int8)
    return index


def test_device_auto_runs_on_this_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert gpu_present() is False
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cuda") == "cuda"  # an explicit choice is left alone
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    embedder = open_embedder(EmbeddingConfig(device="auto", backend="torch"))
    assert embedder.encoder == Encoder(backend="torch", precision="fp32", device="cpu")
    vecs = embedder.embed(["a sentence", "another one"])
    assert vecs.shape == (2, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


def test_auto_on_a_new_index_picks_int8_here_and_records_why():
    embedder = open_embedder(EmbeddingConfig())  # backend auto, device auto, no index yet
    enc = embedder.encoder
    figures = dict(enc.figures)
    # int8 passed the gate for the bundled model; it is chosen only when it also measured faster on this CPU.
    assert (enc.precision == "int8") == (figures["int8_speedup"] >= 1.1)
    assert enc.backend == "onnx" and enc.device == "cpu" and len(enc.fingerprint) == 64
    assert figures["hit5_delta"] >= -0.01 and figures["mrr_delta"] >= -0.01


def test_int8_vectors_are_close_to_fp32_and_keep_dev_quality(fp32, int8, tmp_path):
    texts = [json.loads(line)["question"] for line in (LECTURE / "questions" / "dev.jsonl").read_text().splitlines()]
    cos = (fp32.embed(texts) * int8.embed(texts)).sum(axis=1)
    assert cos.min() > 0.97, cos.min()

    from ingest.pipeline import ingest_paths
    from rag.api import open_pipeline
    from rag.config import Config

    questions = [json.loads(line) for line in (LECTURE / "questions" / "dev.jsonl").read_text().splitlines()]
    questions = [q for q in questions if q["answerable"]]
    scores = {}
    for name, embedder in (("fp32", fp32), ("int8", int8)):
        index = tmp_path / name
        ingest_paths([LECTURE / "docs"], index, IngestConfig(), embedder=embedder)
        ranks = []
        with open_pipeline(index, Config(), embedder=embedder) as r:
            for q in questions:
                hits = r.retrieve(q["question"], k=10)
                gold = {g["source"] for g in q["reference_sources"]}
                ranks.append(next((i for i, h in enumerate(hits, 1) if h.chunk.source in gold), None))
        scores[name] = (sum(1 for x in ranks if x and x <= 5) / len(ranks), sum(1 / x for x in ranks if x) / len(ranks))
    assert scores["int8"][0] >= scores["fp32"][0] - 0.01, scores
    assert scores["int8"][1] >= scores["fp32"][1] - 0.01, scores


def test_the_export_is_cached_and_a_damaged_file_is_not_used(int8, tmp_path, monkeypatch):
    from ingest import onnx

    folder = int8._inner.folder
    meta = json.loads((onnx.export_dir(folder) / "meta.json").read_text())
    assert meta["sha256"]["int8"] == int8.encoder.fingerprint == onnx.file_sha256(int8._inner.onnx.path)
    assert meta["verified"]["int8"]["min_cosine"] >= onnx.MIN_COSINE["int8"]
    monkeypatch.setenv("RAG_CACHE", str(tmp_path))
    copy = onnx.export_dir(folder)
    shutil.copytree(int8._inner.onnx.path.parent, copy)
    assert onnx._verified(copy, copy / "meta.json", "int8") is not None
    with open(copy / "model-int8.onnx", "r+b") as fh:  # one flipped byte
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert onnx._verified(copy, copy / "meta.json", "int8") is None


def test_manifest_records_the_encoder_and_another_family_is_refused(int8_index, fp32, int8, hash_embedder):
    from ingest.collection import Collection
    from ingest.pipeline import ingest_paths
    from rag.api import open_pipeline
    from rag.config import Config

    manifest = json.loads((int8_index / "manifest.json").read_text())
    assert (manifest["embedding_backend"], manifest["embedding_precision"]) == ("onnx", "int8")
    assert manifest["embedding_fingerprint"] == int8.encoder.fingerprint
    with pytest.raises(IndexMismatchError, match="int8 vectors"):
        open_pipeline(int8_index, Config(), embedder=fp32)
    with pytest.raises(IndexMismatchError, match="int8 vectors"):
        open_pipeline(int8_index, Config().with_overrides(**{"embedding.backend": "torch"}))
    with pytest.raises(IndexMismatchError, match="int8 vectors"):
        ingest_paths([LECTURE / "docs"], int8_index, IngestConfig(), embedder=fp32)
    with open_pipeline(int8_index, Config()) as r:  # auto follows the index
        assert r.embedder.encoder.precision == "int8"
        assert r.retrieve("generative adversarial networks", k=3)
    # an embedder that does not say what it is (a test fake, a custom one) is not refused, and keeps the record
    ingest_paths([LECTURE / "docs"], int8_index, IngestConfig(), embedder=hash_embedder)
    coll = Collection(int8_index)
    try:
        assert coll.manifest.embedding_precision == "int8"
    finally:
        coll.close()


def test_readers_memory_map_the_faiss_file_writers_do_not(int8_index):
    from ingest.collection import Collection, vectors_file
    from ingest.index import FaissIndex

    reader = Collection(int8_index)
    writer = Collection(int8_index, readonly=False)
    try:
        assert reader.vectors.mapped and not writer.vectors.mapped
        q = np.random.default_rng(0).standard_normal((2, 384)).astype(np.float32)
        assert np.array_equal(reader.vectors.search(q, 5)[1], writer.vectors.search(q, 5)[1])
        path = vectors_file(int8_index, reader.generation)
        loaded = FaissIndex.load(path, kind="flat", mmap=True)
        assert loaded.ntotal == reader.vectors.ntotal > 0
    finally:
        reader.close()
        writer.close()


def test_a_query_process_imports_neither_torch_nor_sentence_transformers(int8_index):
    code = (
        "import sys\n"
        "from rag.api import open_pipeline\n"
        f"with open_pipeline({str(int8_index)!r}) as r:\n"
        "    hits = r.retrieve('generative adversarial networks', k=3)\n"
        "assert hits\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
