"""`HybridRetriever`: the hybrid search (`rag.retrieval.search`) as a LlamaIndex `BaseRetriever`.

`retrieve()` is the contract: it returns `NodeWithScore`s and drops into any LlamaIndex app (query
engines, fusion, postprocessors). It always searches the pipeline's current index, so a long-lived
retriever sees what a later `rag ingest` publishes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.retrieval.filters import Filters
from rag.retrieval.search import Passage

if TYPE_CHECKING:
    from rag.pipeline import Pipeline

__all__ = ["HybridRetriever", "Passage", "to_node"]


class HybridRetriever(BaseRetriever):
    def __init__(self, pipeline: "Pipeline", k: int | None = None, filters: Filters | None = None) -> None:
        super().__init__()
        self._pipeline = pipeline
        self.k = k or pipeline.settings.k
        self.filters = filters

    def search(self, query: str, k: int | None = None, filters: Filters | None = None) -> list[Passage]:
        """Our `Passage` records rather than nodes (what `rag.retrieve` returns)."""
        return self._pipeline.searcher.search(query, k or self.k, filters or self.filters)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(p) for p in self.search(query_bundle.query_str)]


def to_node(passage: Passage) -> NodeWithScore:
    """A passage as LlamaIndex sees it: its metadata with source, title, offsets and both scores."""
    node = TextNode(id_=passage.id, text=passage.text, metadata={
        **passage.metadata, "source": passage.source, "title": passage.title, "start": passage.start,
        "end": passage.end, "also_in": list(passage.also_in), "dense_score": passage.dense_score,
        "keyword_score": passage.keyword_score})
    node.start_char_idx, node.end_char_idx = passage.start, passage.end
    # bookkeeping, not content: kept out of the text a LlamaIndex app sends to its LLM or embeds
    from rag.ingestion.injection import SCANNED_KEY

    node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, SCANNED_KEY]
    node.excluded_embed_metadata_keys = [*node.excluded_embed_metadata_keys, SCANNED_KEY]
    return NodeWithScore(node=node, score=passage.score)
