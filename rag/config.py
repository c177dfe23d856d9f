"""config.toml parsed once into frozen, validated dataclasses that are passed explicitly."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ingest.config import ConfigError, IngestConfig

MODES = ("dense", "keyword", "hybrid")
FUSIONS = ("rrf", "weighted")
LLMS = ("local", "openai", "extractive")


def _check(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} {value!r} is not known; valid values are: {', '.join(allowed)}")


@dataclass(frozen=True)
class RetrievalConfig:
    mode: str = "hybrid"
    k: int = 10
    fusion: str = "weighted"
    rrf_k: int = 60
    dense_weight: float = 0.3
    candidates: int = 50
    mmr_lambda: float = 1.0

    def __post_init__(self) -> None:
        _check(self.mode, MODES, "retrieval.mode")
        _check(self.fusion, FUSIONS, "retrieval.fusion")
        if self.k < 1 or self.candidates < 1:
            raise ConfigError("retrieval.k and retrieval.candidates must be >= 1")
        if not 0.0 <= self.mmr_lambda <= 1.0 or not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError("retrieval.mmr_lambda and retrieval.dense_weight must be within [0, 1]")


@dataclass(frozen=True)
class AnswerConfig:
    llm: str = "local"
    context_tokens: int = 1000
    max_blocks: int = 5
    min_dense_score: float = 0.15
    weak_dense_score: float = 0.30
    min_keyword_overlap: float = 0.5
    verify: bool = False

    def __post_init__(self) -> None:
        _check(self.llm, LLMS, "answer.llm")
        if self.context_tokens < 64 or self.max_blocks < 1:
            raise ConfigError("answer.context_tokens must be >= 64 and answer.max_blocks >= 1")


@dataclass(frozen=True)
class LocalLLMConfig:
    model: str = "qwen2.5-1.5b"
    n_ctx: int = 4096
    threads: int = 1
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int = 0


@dataclass(frozen=True)
class OpenAIConfig:
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = 0
    timeout: float = 60.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_retries < 0:
            raise ConfigError("llm.openai.timeout must be > 0 and llm.openai.max_retries >= 0")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_request_bytes: int = 10_000_000
    max_question_chars: int = 2000
    rate_limit_per_minute: int = 120
    answer_timeout: float = 120.0


@dataclass(frozen=True)
class EvalConfig:
    out: str = "runs/latest"
    judge: str = ""

    def __post_init__(self) -> None:
        _check(self.judge, ("", "local", "openai"), "eval.judge")


@dataclass(frozen=True)
class Config:
    index_dir: Path = Path(".rag/index")
    ingest: IngestConfig = field(default_factory=IngestConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    local: LocalLLMConfig = field(default_factory=LocalLLMConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with dotted overrides, e.g. with_overrides(**{"answer.llm": "openai"}); None values are ignored."""
        cfg = self
        for dotted, value in changes.items():
            if value is None:
                continue
            if dotted == "index_dir":
                cfg = replace(cfg, index_dir=Path(value))
                continue
            part, _, key = dotted.partition(".")
            sub = getattr(cfg, part)
            cfg = replace(cfg, **{part: replace(sub, **{key: value})})
        return cfg


_TABLES = {"index", "embedding", "ingest", "retrieval", "answer", "llm", "server", "eval"}


def _build(klass: type, table: dict[str, Any], name: str) -> Any:
    allowed = {f.name for f in fields(klass)}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(unknown)}; valid keys are: {', '.join(sorted(allowed))}")
    try:
        return klass(**table)
    except TypeError as e:
        raise ConfigError(f"[{name}]: {e}") from e


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document into a Config."""
    unknown = sorted(set(data) - _TABLES)
    if unknown:
        raise ConfigError(f"unknown table(s) {', '.join(unknown)}; valid tables are: {', '.join(sorted(_TABLES))}")
    llm = data.get("llm", {})
    bad_llm = sorted(set(llm) - {"local", "openai"})
    if bad_llm:
        raise ConfigError(f"unknown table(s) llm.{', llm.'.join(bad_llm)}; valid: llm.local, llm.openai")
    index = data.get("index", {})
    if set(index) - {"dir"}:
        raise ConfigError("[index] takes only: dir")
    return Config(
        index_dir=Path(index.get("dir", ".rag/index")),
        ingest=IngestConfig.from_dict(data.get("ingest", {}), data.get("embedding", {})),
        retrieval=_build(RetrievalConfig, data.get("retrieval", {}), "retrieval"),
        answer=_build(AnswerConfig, data.get("answer", {}), "answer"),
        local=_build(LocalLLMConfig, llm.get("local", {}), "llm.local"),
        openai=_build(OpenAIConfig, llm.get("openai", {}), "llm.openai"),
        server=_build(ServerConfig, data.get("server", {}), "server"),
        eval=_build(EvalConfig, data.get("eval", {}), "eval"),
    )


def load_config(path: Path | None = None) -> Config:
    """Read config.toml: the given path, else ./config.toml if present, else the defaults."""
    if path is None:
        candidate = Path("config.toml")
        if not candidate.exists():
            return Config()
        path = candidate
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from e
    try:
        return parse_config(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
