"""Configuration: config.toml and RAG_SECTION__KEY environment overrides, parsed once into typed, validated,
frozen settings that are passed explicitly.

Library code never looks for a config file: `rag.open(dir)` uses the defaults unless it is given a Config. The
faces on top (CLI, server) call `load_config(find_config_file(...))`, which looks in order at --config,
$RAG_CONFIG, ./config.toml and the user config directory (~/.config/rag/config.toml on Linux).
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidatorFunctionWrapHandler, field_validator, model_validator

from ingest.backend import IndexTarget, target_for
from ingest.config import DEFAULT_EF_SEARCH, EF_SEARCH_RULE, ConfigError, IngestConfig, Settings, check_ef_search, validated

MODES = ("dense", "keyword", "hybrid")
FUSIONS = ("rrf", "weighted")
LLMS = ("local", "openai", "extractive")
TABLES = ("index", "embedding", "ingest", "retrieval", "answer", "llm", "server", "eval")


class IndexConfig(Settings):
    # embedded: FAISS + SQLite in `dir`. postgres: PostgreSQL with pgvector, its connection string in the environment
    # variable named by `dsn_env` (never in this file), its tables in schema `pg_schema`; `dir` then holds only
    # the server's uploads.
    dir: Path = Path(".rag/index")
    backend: Literal["embedded", "postgres"] = "embedded"
    dsn_env: str = "RAG_PG_DSN"
    pg_schema: str = "rag"
    # Candidates an HNSW search keeps (FAISS efSearch; pgvector hnsw.ef_search, which a filter may raise): higher
    # finds more of the true nearest chunks and costs latency. Never below the hits a search asks for.
    ef_search: int = DEFAULT_EF_SEARCH

    @field_validator("ef_search", mode="wrap")
    @classmethod
    def _ef_search(cls, value: Any, to_int: ValidatorFunctionWrapHandler) -> int:
        try:  # lax like the other integers ("64" from the environment), but `true` is no breadth
            return check_ef_search(value if isinstance(value, bool) else to_int(value))
        except (ValidationError, ConfigError):
            raise ValueError(EF_SEARCH_RULE) from None  # describe_errors adds the key and the value

    @model_validator(mode="after")
    def _target_names(self) -> IndexConfig:
        self.target  # noqa: B018 - checks the schema and variable names (not the variable, read when connecting)
        return self

    @property
    def target(self) -> IndexTarget:
        """The index itself: its directory (embedded) or its PostgreSQL schema."""
        return target_for(self.backend, self.dir, self.dsn_env, self.pg_schema)


class RetrievalConfig(Settings):
    mode: Literal["dense", "keyword", "hybrid"] = "hybrid"
    k: int = Field(10, ge=1, le=1000)
    fusion: Literal["rrf", "weighted"] = "weighted"
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(0.3, ge=0.0, le=1.0)
    candidates: int = Field(50, ge=1, le=10_000)
    mmr_lambda: float = Field(1.0, ge=0.0, le=1.0)


class AnswerConfig(Settings):
    llm: Literal["local", "openai", "extractive"] = "local"
    context_tokens: int = Field(1000, ge=64)
    max_blocks: int = Field(5, ge=1, le=50)
    min_block_score: float = Field(0.5, ge=0.0, le=1.0)  # share of the top hit's retrieval score a block needs
    min_blocks: int = Field(2, ge=1, le=50)  # blocks shown whatever their score (within the budget)
    min_dense_score: float = Field(0.15, ge=-1.0, le=1.0)
    weak_dense_score: float = Field(0.30, ge=-1.0, le=1.0)
    min_keyword_overlap: float = Field(0.5, ge=0.0, le=1.0)
    min_answerability: float = Field(0.37, ge=0.0, le=1.0)
    min_entailment: float = Field(0.5, ge=0.0, le=1.0)
    min_recited_entailment: float = Field(0.35, ge=0.0, le=1.0)  # judge bar for a sentence re-cited to another block
    min_recited_words: float = Field(0.6, ge=0.0, le=1.0)  # share of its content words the new block must hold
    min_restated_entailment: float = Field(0.6, ge=0.0, le=1.0)  # judge bar when the question's words count too
    max_miscitation: float = Field(0.1, ge=0.0, le=1.0)
    verify: bool = True
    # When no sentence of the answer passes the checks, ask once more for a sentence copied from the documents
    # (rag.prompt.quote_prompt), checked the same way; only when the model's P(answerable) reaches the bar.
    second_draft: bool = False
    min_second_draft_answerability: float = Field(0.5, ge=0.0, le=1.0)


class LocalLLMConfig(Settings):
    model: str = "qwen2.5-1.5b"
    n_ctx: int = Field(4096, ge=256)
    threads: int = Field(0, ge=0)  # 0 = the CPUs this process may use (llama.cpp's threads wait passively)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1)
    seed: int = 0
    flash_attn: bool = False  # llama.cpp's fused attention: faster, but P(yes) then depends on the KV cache's state
    reuse_answer_cache: bool = True  # a check whose prompt opens like the answer's copies that part of its cache
    requantize: Literal["", "q4_0"] = ""  # "q4_0": a bundled Q4_K_M model converted once to Q4_0 (faster prompts)


class OpenAIConfig(Settings):
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the environment variable holding the key
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1)
    top_p: float = Field(1.0, ge=0.0, le=1.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    seed: int | None = 0
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    # Whether the server runs a second request while a stream is open. True (OpenAI, vLLM, Ollama with
    # OLLAMA_NUM_PARALLEL > 1): sentences are checked while the model writes. False: the answer is read whole and
    # then checked (llama.cpp's servers cancel a running request, or queue the next one, when another arrives).
    concurrent: bool = False


class LLMConfig(Settings):
    local: LocalLLMConfig = Field(default_factory=LocalLLMConfig)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)


class ServerConfig(Settings):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_request_bytes: int = Field(10_000_000, ge=1024)
    max_question_chars: int = Field(2000, ge=1)
    max_history_chars: int = Field(20_000, ge=0)  # earlier turns of a conversation, all together
    auth_failures_per_minute: int = Field(30, ge=0)  # per client address; 0 = no limit
    rate_limit_per_minute: int = Field(120, ge=0)
    answer_timeout: float = Field(120.0, gt=0)
    # Threads for the blocking parts of requests (retrieval, key checks); 0 = twice the CPUs, at least 4, on the
    # embedded backend (40 on PostgreSQL, where they wait on the database). More threads than cores only contend for
    # the interpreter: on 2 cores, 4 instead of anyio's 40 served 15 % more retrieve requests a second at 50 clients.
    threads: int = Field(0, ge=0, le=1000)
    # Server processes on the one port (uvicorn's workers), each with its own models and pools: requests spread over
    # more cores than one interpreter can use. Rate limits, upload jobs, keys and the audit log are shared through the
    # index (its SQLite files, or PostgreSQL). Memory grows with each process's embedder and LLM.
    workers: int = Field(1, ge=1, le=64)


class Config(Settings):
    """Every setting of rag. Sections are typed; `eval` is the evaluation package's table, validated there."""

    index: IndexConfig = Field(default_factory=IndexConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    answer: AnswerConfig = Field(default_factory=AnswerConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    eval: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _embedding_table(cls, data: Any) -> Any:
        """[embedding] is its own table in config.toml; in the settings it belongs to ingestion. `index_dir=` is
        accepted as a short name for index.dir."""
        if isinstance(data, dict) and "index_dir" in data:
            data = dict(data)
            data["index"] = {**dict(data.get("index") or {}), "dir": data.pop("index_dir")}
        if isinstance(data, dict) and "embedding" in data:
            data = dict(data)
            ingest = dict(data.get("ingest") or {})
            ingest["embedding"] = {**dict(ingest.get("embedding") or {}), **dict(data.pop("embedding") or {})}
            data["ingest"] = ingest
        return data

    @field_validator("eval", mode="before")
    @classmethod
    def _table(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("[eval] must be a table")
        return value

    # Short names used all over the code base.
    @property
    def index_dir(self) -> Path:
        return self.index.dir

    @property
    def local(self) -> LocalLLMConfig:
        return self.llm.local

    @property
    def openai(self) -> OpenAIConfig:
        return self.llm.openai

    def with_overrides(self, **changes: Any) -> Config:
        """A validated copy with dotted overrides, e.g. with_overrides(**{"answer.llm": "openai"}); None values
        are ignored. `index_dir`, `local.*`, `openai.*` and `embedding.*` are accepted as short names."""
        data = self.model_dump()
        for dotted, value in changes.items():
            if value is None:
                continue
            path = _ALIASES.get(dotted, dotted)
            for short, full in _PREFIXES.items():
                if path.startswith(short):
                    path = full + path[len(short):]
            *parents, key = path.split(".")
            node = data
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown setting {dotted!r}")
                node = node[part]
            node[key] = value
        return validated(Config, data)


_ALIASES = {"index_dir": "index.dir"}
_PREFIXES = {"local.": "llm.local.", "openai.": "llm.openai.", "embedding.": "ingest.embedding."}


def env_overrides() -> dict[str, Any]:
    """The configuration tables given by RAG_SECTION__KEY environment variables (values decoded as TOML values
    where they parse, e.g. `true`, `10`, `[".md"]`; otherwise kept as strings)."""
    if not any(k.upper().startswith("RAG_") and "__" in k for k in os.environ):
        return {}
    return {table: _decode(values) for table, values in _environment()().model_dump().items() if values}


@functools.cache
def _environment() -> type:
    """RAG_SECTION__KEY variables as nested tables (e.g. RAG_ANSWER__VERIFY=true, RAG_LLM__LOCAL__MODEL=...).
    pydantic-settings is imported only when such a variable is set: it costs ~0.1 s of every command's start."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Environment(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", extra="ignore",
                                          case_sensitive=False)

        index: dict[str, Any] = Field(default_factory=dict)
        embedding: dict[str, Any] = Field(default_factory=dict)
        ingest: dict[str, Any] = Field(default_factory=dict)
        retrieval: dict[str, Any] = Field(default_factory=dict)
        answer: dict[str, Any] = Field(default_factory=dict)
        llm: dict[str, Any] = Field(default_factory=dict)
        server: dict[str, Any] = Field(default_factory=dict)
        eval: dict[str, Any] = Field(default_factory=dict)

    return Environment


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, str):
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            try:
                return json.loads(value)
            except ValueError:
                return value
    return value


def user_config_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("rag")) / "config.toml"


def find_config_file(explicit: str | Path | None = None) -> Path | None:
    """The config file to use: `explicit` (--config), else $RAG_CONFIG, else ./config.toml, else the user config
    directory's config.toml; None when there is none (the defaults apply). A named file must exist."""
    named = explicit or os.environ.get("RAG_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    for candidate in (Path("config.toml"), user_config_file()):
        if candidate.is_file():
            return candidate
    return None


def parse_config(data: dict[str, Any], where: str = "") -> Config:
    """Validate a TOML document (or any nested dict) into a Config; errors name the key, value and allowed."""
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise ConfigError(f"{where + ': ' if where else ''}unknown table(s) {', '.join(unknown)}; "
                          f"valid tables are: {', '.join(TABLES)}")
    try:
        return validated(Config, data)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None


def load_config(path: str | Path | None = None, *, environment: bool = True) -> Config:
    """Read a config file (or nothing, when `path` is None), then apply RAG_SECTION__KEY overrides."""
    data: dict[str, Any] = {}
    where = "environment"
    if path is not None:
        where = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as e:
            raise ConfigError(f"{path}: config file not found") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from e
    overrides = env_overrides() if environment else {}
    if overrides:
        where = f"{where} with RAG_* environment overrides" if path else "RAG_* environment variables"
    return parse_config(_merge(data, overrides), where)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
