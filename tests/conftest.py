"""Fixtures shared by every test package: an offline environment, the embedding model loaded once, the CLI.

Tests use real parts (files in tmp_path, the bundled model, FAISS and SQLite on disk); what is expensive
(loading the model, ~5 s) is done once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

# Before anything imports torch or transformers: no network, and no OpenMP busy-waiting on a 2-core machine.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false",
}
for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session")
def embedder():
    """The real bundled embedding model, loaded once; pass it as `embedder=` to skip reloading."""
    from ingest.config import EmbeddingConfig
    from ingest.embedding import open_embedder

    return open_embedder(EmbeddingConfig())


@dataclass(frozen=True)
class RagCli:
    """Runs the installed `rag` command in a subprocess, in a folder without a config.toml (built-in defaults)."""

    cwd: Path

    @property
    def argv(self) -> list[str]:
        script = Path(sys.executable).with_name("rag")
        if script.exists():
            return [str(script)]
        found = shutil.which("rag")
        return [found] if found else [sys.executable, "-m", "rag.cli"]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **OFFLINE_ENV}

    def run(self, args: Sequence[str | os.PathLike[str]], timeout: float = 120,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *map(str, args)], cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False, **kwargs)

    def popen(self, args: Sequence[str | os.PathLike[str]], **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.argv, *map(str, args)], cwd=self.cwd, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.fixture(scope="session")
def rag_cli(tmp_path_factory: pytest.TempPathFactory) -> RagCli:
    """The `rag` command line, run as a real subprocess."""
    return RagCli(cwd=tmp_path_factory.mktemp("cwd"))
