"""Ingest-side defences of issue 9: tenant names, the reach of --prune, private index files, and rag stats not
calling an index consistent while manifest.json lags behind the store."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.backend import open_index
from ingest.collection import Collection
from ingest.config import IngestConfig
from ingest.errors import IngestError
from ingest.pipeline import ingest_paths

HOLD_LOCK = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def _docs(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("tenant", ["../..", "", ".hidden", "a/b", "x" * 65, "tab\there"])
def test_bad_tenant_names_are_refused_before_anything_is_written(tmp_path: Path, hash_embedder, tenant: str) -> None:
    docs = _docs(tmp_path / "docs", {"a.txt": "alpha"})
    with pytest.raises(IngestError, match=r"bad tenant name .*: use 1-64 letters, digits"):
        ingest_paths([docs], tmp_path / "index", IngestConfig(), tenant=tenant, embedder=hash_embedder)
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize("tenant", ["../..", ""])
def test_the_cli_refuses_bad_tenant_names_with_exit_status_1(tmp_path: Path, rag_cli, tenant: str) -> None:
    docs = _docs(tmp_path / "docs", {"a.txt": "alpha"})
    out = rag_cli.run(["ingest", docs, "--index", tmp_path / "index", "--tenant", tenant], timeout=120)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert f"bad tenant name {tenant!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit" \
        in out.stderr
    out = rag_cli.run(["ingest", docs, "--index", tmp_path / "index", "--tenant", tenant, "--json"], timeout=120)
    assert out.returncode == 1 and "bad tenant name" in json.loads(out.stdout)["error"]["message"]
    assert not (tmp_path / "index" / "store.sqlite").exists()


def test_prune_touches_only_this_tenant_and_the_roots_given_now(tmp_path: Path, new_index, hash_embedder) -> None:
    """On both index backends (an index directory; a PostgreSQL schema)."""
    index = new_index()
    one = _docs(tmp_path / "one", {"keep.txt": "one keep", "gone.txt": "one gone"})
    two = _docs(tmp_path / "two", {"other.txt": "two other"})
    same_a = _docs(tmp_path / "a-docs", {"gone.txt": "tenant a's own gone.txt", "shared.txt": "a shared"})
    cfg = IngestConfig()
    for root, tenant in ((one, None), (two, None), (same_a, "a"), (one, "b")):
        ingest_paths([root], index, cfg, tenant=tenant, embedder=hash_embedder)

    (one / "gone.txt").unlink()
    report = ingest_paths([one], index, cfg, prune=True, embedder=hash_embedder)  # no tenant
    assert report.removed == ["gone.txt"]

    reader = open_index(index)
    try:
        with reader.snapshot() as view:  # every tenant's documents
            docs = sorted((d.tenant or "-", d.source) for d in view.documents())
    finally:
        reader.close()
    assert docs == [("-", "keep.txt"), ("-", "other.txt"),  # the other root's document stays
                    ("a", "gone.txt"), ("a", "shared.txt"),  # tenant a's gone.txt stays (same name, other tenant)
                    ("b", "gone.txt"), ("b", "keep.txt")]  # tenant b ingested the same folder: not pruned by a run without tenant

    report = ingest_paths([one], index, cfg, prune=True, tenant="b", embedder=hash_embedder)
    assert report.removed == ["gone.txt"]
    (two / "other.txt").unlink()
    report = ingest_paths([one], index, cfg, prune=True, embedder=hash_embedder)  # root two not given: kept
    assert report.removed == []


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_index_files_are_private_whatever_the_umask(tmp_path: Path, hash_embedder, umask: int) -> None:
    docs = _docs(tmp_path / "docs", {"a.txt": "alpha beta", "b.txt": "gamma delta"})
    index = tmp_path / "index"
    old = os.umask(umask)
    try:
        ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)
        (docs / "c.txt").write_text("epsilon")
        ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)  # a second generation, WAL in use
    finally:
        os.umask(old)
    assert stat.S_IMODE(index.stat().st_mode) == 0o700
    names = sorted(p.name for p in index.iterdir())
    assert "store.sqlite" in names and "manifest.json" in names and "vectors-00000002.faiss" in names
    for p in index.iterdir():
        if p.name != ".write.lock":
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))


def test_an_existing_world_readable_index_is_tightened_by_the_next_ingest(tmp_path: Path, hash_embedder) -> None:
    docs = _docs(tmp_path / "docs", {"a.txt": "alpha"})
    index = tmp_path / "index"
    ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)
    os.chmod(index, 0o755)
    os.chmod(index / "store.sqlite", 0o644)
    ingest_paths([docs], index, IngestConfig(), embedder=hash_embedder)
    assert stat.S_IMODE(index.stat().st_mode) == 0o700
    assert stat.S_IMODE((index / "store.sqlite").stat().st_mode) == 0o600


def _stale_manifest(tmp_path: Path, embedder) -> Path:
    """An index whose manifest.json describes generation 1 while the store is at generation 2 (as a crash between
    the store commit and the manifest write leaves it)."""
    docs = _docs(tmp_path / "docs", {"a.txt": "alpha"})
    index = tmp_path / "index"
    ingest_paths([docs], index, IngestConfig(), embedder=embedder)
    first = (index / "manifest.json").read_text()
    (docs / "b.txt").write_text("beta")
    ingest_paths([docs], index, IngestConfig(), embedder=embedder)
    (index / "manifest.json").write_text(first)
    return index


def test_consistency_reports_a_manifest_file_a_generation_behind(tmp_path: Path, hash_embedder) -> None:
    index = _stale_manifest(tmp_path, hash_embedder)
    coll = Collection(index)
    try:
        assert coll.consistency() == [
            "manifest.json describes generation 1, the store generation 2 (an ingest was interrupted after its "
            "commit; the next rag ingest (or rag stats) rewrites it)"]
    finally:
        coll.close()
    (index / "manifest.json").unlink()
    coll = Collection(index)
    try:
        assert [p.split(" (")[0] for p in coll.consistency()] == [
            "manifest.json is missing while the store is at generation 2"]
    finally:
        coll.close()


def test_rag_stats_repairs_a_stale_manifest_or_says_the_index_is_not_consistent(tmp_path: Path, hash_embedder,
                                                                               rag_cli) -> None:
    index = _stale_manifest(tmp_path, hash_embedder)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(index / ".write.lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"  # an ingest is running: stats must not write
        out = rag_cli.run(["stats", "--index", index, "--json"])
        assert out.returncode == 1, out.stderr
        data = json.loads(out.stdout)
        assert data["consistent"] is False and data["repaired"] == []
        assert data["problems"][0].startswith("manifest.json describes generation 1, the store generation 2")
        text = rag_cli.run(["stats", "--index", index])
        assert text.returncode == 1 and "consistent: NO: manifest.json describes generation 1" in text.stdout
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    out = rag_cli.run(["stats", "--index", index, "--json"])
    data = json.loads(out.stdout)
    assert out.returncode == 0 and data["consistent"] is True, out.stdout
    assert data["repaired"] == ["rewrote manifest.json for generation 2 (manifest.json describes generation 1, "
                                "the store generation 2)"]
    assert json.loads((index / "manifest.json").read_text())["generation"] == 2
    assert stat.S_IMODE((index / "manifest.json").stat().st_mode) == 0o600
