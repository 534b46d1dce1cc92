"""Module-level shortcuts over a `Pipeline` per `Settings`, for `from rag import ask`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from rag.config import Settings
from rag.pipeline import Pipeline


@lru_cache(maxsize=4)
def _pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings)


def get_pipeline(settings: Settings | None = None) -> Pipeline:
    return _pipeline(settings or Settings.from_env())


def ask(question: str, history: Sequence[str] | None = None, *, k: int | None = None, mode: str | None = None,
        settings: Settings | None = None, on_token: Callable[[str], None] | None = None):
    """Answer a question from the indexed articles; every sentence of the answer carries a [n] citation."""
    return get_pipeline(settings).ask(question, history, k=k, mode=mode, on_token=on_token)


def retrieve(query: str, k: int | None = None, *, settings: Settings | None = None):
    """The k best passages (hybrid dense + BM25, near-duplicates collapsed)."""
    return get_pipeline(settings).retrieve(query, k)


def ingest(paths: Sequence[str | Path] | None = None, *, rebuild: bool = False, settings: Settings | None = None,
           progress: Callable[[int, int], None] | None = None):
    """Index files or directories incrementally (default: the corpus directory)."""
    return get_pipeline(settings).ingest([Path(p) for p in paths] if paths else None, rebuild=rebuild,
                                         progress=progress)


def get_retriever(settings: Settings | None = None, k: int | None = None):
    """A LlamaIndex `BaseRetriever` over the index: use it in any LlamaIndex app."""
    retriever = get_pipeline(settings).retriever
    if k is not None:
        retriever.k = k
    return retriever
