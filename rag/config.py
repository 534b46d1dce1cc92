"""One `Settings` object. Environment variables and CLI flags map onto its fields.

Read once at start-up (`Settings.from_env()`), never at import time.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rag.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCAL_EMBED_MODEL = "local:all-MiniLM-L6-v2"
MODES = ("auto", "extractive", "llm")
RUNTIMES = ("onnx", "torch")
PRECISIONS = ("int8", "float32")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# env var -> (field, parser). Every setting a user can change from the shell is listed here.
_ENV: dict[str, tuple[str, Any]] = {  # parser: a type, or "flag" for on/off
    "RAG_DATA_DIR": ("data_dir", Path),
    "RAG_CORPUS_DIR": ("corpus_dir", Path),
    "RAG_EMBED_MODEL": ("embed_model", str),
    "RAG_EMBED_RUNTIME": ("embed_runtime", str),
    "RAG_QUERY_PRECISION": ("query_precision", str),
    "RAG_PASSAGE_PRECISION": ("passage_precision", str),
    "RAG_MODEL_CACHE": ("model_cache_dir", Path),
    "RAG_CHUNK_SIZE": ("chunk_size", int),
    "RAG_CHUNK_OVERLAP": ("chunk_overlap", int),
    "RAG_DUP_THRESHOLD": ("dup_threshold", float),
    "RAG_MAX_FILE_BYTES": ("max_file_bytes", int),
    "RAG_K": ("k", int),
    "RAG_MODE": ("mode", str),
    "RAG_COLLECTION": ("collection", str),
    "CHROMA_HOST": ("chroma_host", str),
    "CHROMA_PORT": ("chroma_port", int),
    "OPENAI_API_KEY": ("openai_api_key", str),
    "OPENAI_BASE_URL": ("openai_base_url", str),
    "OPENAI_MODEL": ("openai_model", str),
    "RAG_LLM_TIMEOUT": ("llm_timeout", float),
    "RAG_LLM_MAX_RETRIES": ("llm_max_retries", int),
    "RAG_LLM_MAX_TOKENS": ("llm_max_tokens", int),
    "RAG_LLM_PROMPT_TOKENS": ("llm_prompt_tokens", int),
    "RAG_REQUEST_TIMEOUT": ("request_timeout", float),
    "RAG_LOG_LEVEL": ("log_level", str),
    "RAG_API_TOKEN": ("api_token", str),
    "RAG_API_READ_TOKEN": ("api_read_token", str),
    "RAG_INJECTION_CLASSIFIER": ("injection_classifier", "flag"),
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = PROJECT_DIR / ".rag"
    corpus_dir: Path = PROJECT_DIR / "seeds"
    embed_model: str = LOCAL_EMBED_MODEL
    embed_runtime: str = "onnx"  # how the local model runs: "onnx" (exported once, then no torch) or "torch"
    # How the local ONNX model embeds questions: "int8" costs a third of the time with the same SciFact
    # nDCG@10 (see rag.embedding.onnx_model.quantized_model); "float32" the full graph.
    query_precision: str = "int8"
    # How it embeds what an ingest stores (chunks and their sentences), recorded in the index when it is
    # made: "int8" indexes in about half the time for a little quality (README, "At scale"). None: the
    # index's own (float32 for a new one), as a collection keeps its model; one that differs is refused.
    passage_precision: str | None = None
    model_cache_dir: Path | None = None  # where the ONNX export is kept; default $XDG_CACHE_HOME/newsrag
    chunk_size: int = 200  # tokens (cl100k); MiniLM reads at most 256 word pieces
    chunk_overlap: int = 40
    dup_threshold: float = 0.2  # Jaccard of word 3-shingles; rewrites of one report score ~0.3, others < 0.05
    max_file_bytes: int = 10_000_000
    k: int = 8  # passages retrieved, and read by the answerer
    mode: str = "auto"
    collection: str = "news_chunks"
    chroma_host: str | None = None
    chroma_port: int = 8000
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    llm_timeout: float = 30.0  # seconds for one LLM call, every retry and wait included
    llm_max_retries: int = 2
    llm_max_tokens: int = 300  # the cap on an answer's length, sent as max_tokens
    # The answer prompt's size (cl100k tokens): passages are sent in rank order while they fit. A CPU model
    # reads ~20-35 prompt tokens/s, so `rag llm-server` sets 800; a hosted model reads all k passages.
    llm_prompt_tokens: int = 2500
    api_token: str | None = field(default=None, repr=False)  # required by the REST API's writes (/ingest)
    api_read_token: str | None = field(default=None, repr=False)  # when set, reads need it (or api_token) too
    request_timeout: float = 120.0  # seconds: `rag serve` answers 504 for a request still running after this
    log_level: str = "WARNING"  # DEBUG shows every library's log too, secrets always redacted
    max_answer_words: int = 80
    max_question_chars: int = 2000
    # Off by default: it embeds every sentence at ingest (indexing takes about twice as long) and, at the
    # operating point that flags no real prose, it adds little to the patterns (see rag.ingestion.injection_fit).
    injection_classifier: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "corpus_dir", Path(self.corpus_dir))
        checks = [
            (self.chunk_size >= 32, f"chunk_size must be at least 32 tokens, got {self.chunk_size}"),
            (0 <= self.chunk_overlap < self.chunk_size,
             f"chunk_overlap must be between 0 and chunk_size ({self.chunk_size}), got {self.chunk_overlap}"),
            (0 < self.dup_threshold <= 1, f"dup_threshold must be in (0, 1], got {self.dup_threshold}"),
            (self.max_file_bytes > 0, f"max_file_bytes must be positive, got {self.max_file_bytes}"),
            (1 <= self.k <= 50, f"k must be between 1 and 50, got {self.k}"),
            (self.mode in MODES, f"mode must be one of {', '.join(MODES)}, got {self.mode!r}"),
            (self.llm_timeout > 0, f"llm_timeout must be positive, got {self.llm_timeout}"),
            (0 <= self.llm_max_retries <= 10, f"llm_max_retries must be 0..10, got {self.llm_max_retries}"),
            (self.log_level in LOG_LEVELS, f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"),
            (self.request_timeout > 0, f"request_timeout must be positive, got {self.request_timeout}"),
            (16 <= self.llm_max_tokens <= 4096, f"llm_max_tokens must be 16..4096, got {self.llm_max_tokens}"),
            (300 <= self.llm_prompt_tokens <= 200_000,
             f"llm_prompt_tokens must be 300..200000, got {self.llm_prompt_tokens}"),
            (1 <= self.chroma_port <= 65535, f"chroma_port must be a TCP port, got {self.chroma_port}"),
            (self.embed_runtime in RUNTIMES,
             f"embed_runtime must be one of {', '.join(RUNTIMES)}, got {self.embed_runtime!r}"),
            (self.query_precision in PRECISIONS,
             f"query_precision must be one of {', '.join(PRECISIONS)}, got {self.query_precision!r}"),
            (self.passage_precision in (None, *PRECISIONS),
             f"passage_precision must be one of {', '.join(PRECISIONS)}, got {self.passage_precision!r}"),
            (self.passage_precision != "int8" or (self.embed_model == LOCAL_EMBED_MODEL and self.embed_runtime == "onnx"),
             "passage_precision int8 needs the local model on the ONNX runtime (RAG_EMBED_RUNTIME=onnx)"),
            (_encodable(self.data_dir), f"data_dir {str(self.data_dir)!r} is not valid UTF-8: rename it or choose another"),
            (_encodable(self.corpus_dir),
             f"corpus_dir {str(self.corpus_dir)!r} is not valid UTF-8: rename it or choose another"),
            (self.embed_model == LOCAL_EMBED_MODEL or self.embed_model.startswith("openai:"),
             f"embed_model must be {LOCAL_EMBED_MODEL!r} or 'openai:<model>', got {self.embed_model!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def check_data_dir(self, *, write: bool) -> None:
        """ConfigError, naming the fix, when the data dir cannot be used: a file, unreachable, unreadable,
        or (for writing) read-only. A missing one is fine: ingest creates it, readers report an empty index."""
        path = self.data_dir
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except PermissionError:
            raise ConfigError(f"the data dir {path} cannot be reached by this user (permission denied on a "
                              "folder above it): fix the permissions or set RAG_DATA_DIR") from None
        if exists and not is_dir:
            raise ConfigError(f"the data dir {path} is a file, not a directory: set RAG_DATA_DIR (or --data-dir) "
                              "to a directory")
        if is_dir and not os.access(path, os.R_OK | os.X_OK):
            raise ConfigError(f"the data dir {path} cannot be read by this user: fix its permissions")
        if write:
            parent = next((p for p in (path, *path.parents) if os.path.lexists(p)), None)
            if parent is not None and not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
                raise ConfigError(f"the data dir {path} is read-only for this user: the index needs to write there "
                                  "(fix its permissions or choose another with RAG_DATA_DIR)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then environment variables, then explicit overrides (CLI flags); None means unset."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, (name, parse) in _ENV.items():
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            try:
                values[name] = _flag(var, raw) if parse == "flag" else parse(raw)
            except ConfigError:
                raise
            except ValueError:
                raise ConfigError(f"{var}={raw!r} is not a valid {parse.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def uploads_dir(self) -> Path:
        """Where articles added through the chat or the API are kept (indexed with the corpus)."""
        return self.data_dir / "uploads"

    @property
    def models_dir(self) -> Path:
        if self.model_cache_dir:
            return Path(self.model_cache_dir)
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsrag"

    @property
    def chunker_id(self) -> str:
        return f"sentence-cl100k:{self.chunk_size}:{self.chunk_overlap}"

    @property
    def llm_configured(self) -> bool:
        """A key, or a base URL: a local OpenAI-compatible server needs no key."""
        return bool(self.openai_api_key or self.openai_base_url)

    def resolved_mode(self, mode: str | None = None) -> str:
        mode = mode or self.mode
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "auto":
            return "llm" if self.llm_configured else "extractive"
        return mode


def _flag(var: str, raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{var}={raw!r} must be one of 1, 0, true, false, yes, no, on, off")


def _encodable(path: Path) -> bool:
    from rag.text import is_valid_text

    return is_valid_text(str(path))
