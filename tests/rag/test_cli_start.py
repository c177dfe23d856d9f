"""A command loads only what it uses: an unchanged re-ingest reads no FAISS file and imports neither faiss nor
pydantic-settings (each is a share of every start; through the CLI the start is most of such a run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import LECTURE

ROOT = Path(__file__).resolve().parents[2]

RUN = """
import json, sys
from rag.cli import main
sys.argv = ["rag", "ingest", {docs!r}, "--index", {index!r}, "--json"]
try:
    main()
except SystemExit as e:
    code = e.code
print(json.dumps({{"exit": code, "loaded": sorted(m for m in ("faiss", "pydantic_settings") if m in sys.modules)}}))
"""


def _reingest(index: Path, extra_env: dict[str, str]) -> tuple[dict, dict]:
    # No RAG_* variable and no user config file (HOME is the test's folder) but those given.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RAG_")}
    env.update({"HF_HUB_OFFLINE": "1", "HOME": str(index.parent), "XDG_CONFIG_HOME": str(index.parent), **extra_env})
    done = subprocess.run([sys.executable, "-c", RUN.format(docs=str(LECTURE), index=str(index))], cwd=index.parent,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    *out, last = done.stdout.strip().splitlines()
    return json.loads(out[-1]), json.loads(last)


def test_an_unchanged_reingest_reads_no_faiss_file_and_skips_the_settings_library(tmp_path: Path,
                                                                                  lecture_index: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(lecture_index, index)
    files = len([p for p in LECTURE.iterdir() if p.is_file()])

    report, run = _reingest(index, {})
    assert run == {"exit": 0, "loaded": []}
    assert report["unchanged"] == files and report["added"] == report["updated"] == report["chunks_embedded"] == 0

    # With a RAG_TABLE__KEY variable set, pydantic-settings reads it and it applies; still no FAISS.
    report, run = _reingest(index, {"RAG_INGEST__LOAD_WORKERS": "2"})
    assert run == {"exit": 0, "loaded": ["pydantic_settings"]} and report["unchanged"] == files
    report, run = _reingest(index, {"RAG_INGEST__LOAD_WORKERS": "0"})  # out of range: refused, so it was read
    assert run == {"exit": 1, "loaded": ["pydantic_settings"]}
    assert "load_workers" in json.dumps(report)
