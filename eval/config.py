"""The [eval] table of config.toml, validated here (the rag package keeps it as an opaque table)."""

from __future__ import annotations

from typing import Any, Literal

from ingest.config import Settings, validated


class EvalConfig(Settings):
    out: str = "runs/latest"  # run directory of `rag eval` when --out is not given
    # The LLM that judges claims in runs: "" = the answering model (as the answer path does), or another backend.
    judge: Literal["", "local", "openai"] = ""


def eval_config(config: Any) -> EvalConfig:
    """The evaluation settings of a rag Config (its `eval` table)."""
    return validated(EvalConfig, dict(getattr(config, "eval", {}) or {}), "eval")
