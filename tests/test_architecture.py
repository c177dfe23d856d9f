"""The house rules that keep the code walkable: the import contracts of pyproject.toml (eval -> rag -> ingest,
faces on top, stages never reach up) and modules of about 400 lines at most."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 420  # "about 400": a module past this is split along its responsibilities


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout and "KEPT" in out.stdout


def test_a_forbidden_import_is_caught(tmp_path: Path) -> None:
    """The contract can fail: an ingest module importing rag breaks it."""
    import shutil

    copy = tmp_path / "repo"
    for name in ("ingest", "rag", "eval"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "ingest" / "sneaky.py").write_text("from rag.api import RAG  # noqa: F401\n")
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(copy / "pyproject.toml")], cwd=copy, capture_output=True,
                         text=True, timeout=300, check=False, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0 and "BROKEN" in out.stdout and "ingest.sneaky" in out.stdout


def test_modules_stay_small() -> None:
    big = {}
    for package in ("ingest", "rag", "eval"):
        for path in (ROOT / package).rglob("*.py"):
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > MAX_LINES:
                big[str(path.relative_to(ROOT))] = n
    assert not big, f"modules over {MAX_LINES} lines: {big}"
