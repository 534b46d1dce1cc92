"""Module-level shortcuts over a `Pipeline` per `Settings`, for `from rag import ask`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from rag.config import Settings
from rag.retrieval.filters import Filters
from rag.pipeline import Pipeline

if TYPE_CHECKING:
    from rag.answer.citations import Answer
    from rag.ingestion.incremental import IngestReport
    from rag.retrieval.retriever import HybridRetriever
    from rag.retrieval.search import Passage


@lru_cache(maxsize=4)
def _pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings)


def get_pipeline(settings: Settings | None = None) -> Pipeline:
    return _pipeline(settings or Settings.from_env())


def ask(question: str, history: Sequence[str] | None = None, *, k: int | None = None, mode: str | None = None,
        filters: Filters | Mapping[str, Any] | None = None, settings: Settings | None = None,
        on_token: Callable[[str], None] | None = None) -> Answer:
    """Answer a question from the indexed articles; every sentence of the answer carries a [n] citation.

    Returns the `Answer` that `rag ask --json` prints (`answer.to_dict()`)."""
    return get_pipeline(settings).ask(question, history, k=k, mode=mode, on_token=on_token, filters=filters)


def retrieve(query: str, k: int | None = None, *, filters: Filters | Mapping[str, Any] | None = None,
             history: Sequence[str] | None = None, settings: Settings | None = None) -> list[Passage]:
    """The k best passages (hybrid dense + BM25, near-duplicates collapsed into `also_in`).

    filters: {"source": [file names], "date_from": "YYYY-MM-DD", "date_to": "YYYY-MM-DD"}.
    history: earlier questions, used to rewrite a follow-up query."""
    return get_pipeline(settings).retrieve(query, k, filters=filters, history=history)


def ingest(paths: Sequence[str | Path] | None = None, *, rebuild: bool = False, settings: Settings | None = None,
           progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Index files or directories incrementally (default: the corpus directory)."""
    return get_pipeline(settings).ingest([Path(p) for p in paths] if paths else None, rebuild=rebuild,
                                         progress=progress)


def sources(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The indexed documents: source, title, chunks, publisher, author, date, duplicates."""
    return get_pipeline(settings).sources()


def get_retriever(settings: Settings | None = None, k: int | None = None,
                  filters: Filters | Mapping[str, Any] | None = None) -> HybridRetriever:
    """A LlamaIndex `BaseRetriever` over the index: use it in any LlamaIndex app."""
    return get_pipeline(settings).as_retriever(k, filters)
