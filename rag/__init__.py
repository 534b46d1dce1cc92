"""Cited question answering over a news corpus.

    from rag import ask, retrieve, ingest, get_retriever
    answer = ask("Why was the Budapest summit cancelled?")

Names are imported on first use, so `import rag` (and `rag --help`) stay instant.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ask": "rag.api", "retrieve": "rag.api", "ingest": "rag.api", "get_retriever": "rag.api",
    "get_pipeline": "rag.api", "sources": "rag.api", "Pipeline": "rag.pipeline", "Settings": "rag.config",
    "Filters": "rag.retrieval.filters", "GoldFileError": "rag.errors",
    "Answer": "rag.answer.citations", "Citation": "rag.answer.citations", "Passage": "rag.retrieval.search",
    "HybridRetriever": "rag.retrieval.retriever", "HybridSearch": "rag.retrieval.search", "IngestReport": "rag.ingestion.incremental",
    "RagError": "rag.errors", "ConfigError": "rag.errors", "InputRejected": "rag.errors",
    "StoreUnavailable": "rag.errors", "StoreMismatch": "rag.errors", "StoreBusy": "rag.errors",
    "LLMUnavailable": "rag.errors", "LLMAuthError": "rag.errors", "EmbeddingFailed": "rag.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
