"""`HybridSearch`: dense (Chroma) + BM25 over chunks and over whole documents, fused by a weighted sum of
scores, near-duplicates collapsed.

Plain Python over Chroma and bm25s, returning `Passage` records for the answerers and every surface.
LlamaIndex apps get the same search as a `BaseRetriever` from `rag.retrieval.retriever.HybridRetriever`; it lives
apart so that answering a question never imports LlamaIndex (~1 s of a cold `rag ask`).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from rag.ingestion import sentence_store
from rag.batching import Coalescer
from rag.retrieval.filters import Filters
from rag.text import containment, shingles

# Fusion: each ranking's scores divided by its best score, then a convex combination (Bruch et al. 2023,
# "An analysis of fusion functions for hybrid retrieval"). The weights and the candidate depth are the ones
# `python -m rag.evaluation.retrieval_study` picks on one half of SciFact's 809 training claims; on the
# other half nDCG@10 went from 0.736 (reciprocal rank fusion of chunks, 20 each) to 0.752.
DENSE_WEIGHT = 0.65
CHUNK_KEYWORD_WEIGHT = 0.15
DOCUMENT_KEYWORD_WEIGHT = 0.20  # BM25 of the chunk's whole document: an article's terms spread over chunks
CANDIDATES_PER_RETRIEVER = 100
FILTER_WIDENING = 5
RECORD_CACHE = 20_000  # chunk texts and metadata kept in memory per index snapshot (a few MB per 1,000)
COLLAPSE_CONTAINMENT = 0.2  # 3-shingle containment above which two passages of duplicate documents say the same


@dataclass
class Passage:
    id: str
    text: str
    source: str
    title: str
    start: int
    end: int
    score: float
    dense_score: float | None = None
    keyword_score: float | None = None
    also_in: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # The vectors of its sentences as stored at ingest (rag.ingestion.sentence_store), for the answerer; never shown.
    sentence_vectors: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The passage as every surface shows it. The metadata's absolute path (the index's key for the
        file) is left out: `source` names the file, relative to where it was ingested from; so is the id of
        the rules the instruction scan used (bookkeeping)."""
        from rag.ingestion.injection import SCANNED_KEY

        data = asdict(self)
        del data["sentence_vectors"]
        data["metadata"] = {k: v for k, v in (data["metadata"] or {}).items() if k not in ("path", SCANNED_KEY)}
        return data


class HybridSearch:
    """Score fusion of a dense and two keyword rankings, written here rather than with LlamaIndex's
    QueryFusionRetriever because that one resolves a default LLM when constructed (failing offline
    without OpenAI settings), fuses ranked lists only (not a document's score into its chunks') and has
    no notion of duplicate documents."""

    def __init__(self, store: Any, keyword_index: Any, embedder: Any, duplicates: dict[str, list[str]],
                 k: int = 5, candidates: int = CANDIDATES_PER_RETRIEVER, dates: dict[str, str | None] | None = None,
                 generation: str | None = None) -> None:
        self.generation = generation  # which publication of the index this snapshot serves
        # Chunk ids hash their source and text, and a snapshot is replaced whenever an ingest publishes, so
        # a record fetched once stays right for this snapshot's life: no store round trip per query for it.
        self._records: dict[str, tuple[str, dict]] = {}
        self._records_lock = threading.Lock()
        self._dates = dates or {}  # source -> the date the article states, for date filters
        self._store = store
        self._keyword = keyword_index
        self._embedder = embedder
        self._duplicates = duplicates  # source -> sources of its near-duplicate documents
        self.k = k
        self._candidates = max(candidates, k)
        self._dense: dict[int, Any] = {}  # candidates wanted -> the Coalescer of those dense queries

    def _dense_query(self, vector: Sequence[float], n: int) -> list[tuple[str, float]]:
        """The store's n nearest chunks, the queries of concurrent searches sent as one (rag.batching)."""
        coalescer = self._dense.get(n)
        if coalescer is None:
            with self._records_lock:
                coalescer = self._dense.setdefault(n, Coalescer(lambda vectors: self._store.query_many(vectors, n)))
        return coalescer.submit(vector)

    @property
    def embedder(self) -> Any:
        return self._embedder

    @property
    def store(self) -> Any:
        return self._store

    @property
    def keyword_digest(self) -> str | None:
        return self._keyword.digest if self._keyword else None

    def search(self, query: str, k: int | None = None, filters: Filters | None = None,
               query_vector: Sequence[float] | None = None) -> list[Passage]:
        """The k best passages; pass `query_vector` when the caller has embedded the query already."""
        k = k or self.k
        # A filter is applied to the candidates, so look further down both rankings for enough of them.
        candidates = max(self._candidates, 2 * k) * (FILTER_WIDENING if filters else 1)
        vector = query_vector if query_vector is not None else self._embedder.get_query_embedding(query)
        dense = self._dense_query(vector, candidates)
        keyword, documents = self._keyword.search_both(query, candidates, candidates) if self._keyword else ([], [])
        source_of: dict[str, str] = {}
        if self._keyword:  # only chunks the published keyword index knows: never half of an ingest in progress
            source_of = self._keyword.chunks.documents_of({i: None for i, _ in (*dense, *keyword)})
            dense = [(i, score) for i, score in dense if i in source_of]
        fused = fuse(dense, keyword, documents, source_of)
        order = sorted(fused, key=lambda i: (-fused[i], i))
        dense_scores, keyword_scores = dict(dense), dict(keyword)
        kept: list[Passage] = []
        records: dict[str, tuple[str, dict]] = {}
        fetched = 0
        for position, chunk_id in enumerate(order):
            if position == fetched:
                # Records (text, metadata with sentence vectors) are read from the store a few at a time,
                # only as far down the ranking as the k passages need: most of the fused candidates never
                # are, and reading them all made a first-seen question's answer cost 1.7x its retrieval.
                window = order[fetched : fetched + 2 * (k - len(kept)) + (FILTER_WIDENING if filters else 0)]
                records.update(self._records_for(window))
                fetched += len(window)
            if chunk_id not in records:
                continue  # deleted between the two look-ups
            text, meta = records[chunk_id]
            if filters and not filters.allows(meta["source"], self._dates.get(meta["source"])):
                continue
            if self._collapse_into(kept, text, meta["source"]):
                continue
            shown = {k: v for k, v in meta.items()
                     if k not in (*sentence_store.FIELDS, "source", "title", "start", "end")}
            kept.append(Passage(id=chunk_id, text=text, source=meta["source"], title=meta.get("title", ""),
                                start=int(meta["start"]), end=int(meta["end"]), score=round(fused[chunk_id], 6),
                                dense_score=_round(dense_scores.get(chunk_id)),
                                keyword_score=_round(keyword_scores.get(chunk_id)), metadata=shown,
                                sentence_vectors=meta.get(sentence_store.KEY)))
            if len(kept) == k:
                break
        return kept

    def _records_for(self, ids: list[str]) -> dict[str, tuple[str, dict]]:
        missing = [i for i in ids if i not in self._records]
        fetched = self._store.get(missing) if missing else {}
        with self._records_lock:
            self._records.update(fetched)
            while len(self._records) > RECORD_CACHE:
                del self._records[next(iter(self._records))]  # oldest first
            return {i: self._records[i] for i in ids if i in self._records}

    def _collapse_into(self, kept: list[Passage], text: str, source: str) -> bool:
        """Fold a passage into a better-ranked one from a near-duplicate document saying the same."""
        peers = self._duplicates.get(source)
        rivals = [passage for passage in kept if passage.source in peers] if peers else []
        if not rivals:  # (most passages: their shingles, ~0.1 ms each, are not needed)
            return False
        mine = shingles(text)
        for passage in rivals:
            if containment(mine, shingles(passage.text)) >= COLLAPSE_CONTAINMENT:
                if source not in passage.also_in:
                    passage.also_in.append(source)
                return True
        return False


def fuse(dense: Sequence[tuple[str, float]], keyword: Sequence[tuple[str, float]],
         documents: Sequence[tuple[str, float]], source_of: dict[str, str],
         weights: tuple[float, float, float] = (DENSE_WEIGHT, CHUNK_KEYWORD_WEIGHT, DOCUMENT_KEYWORD_WEIGHT),
         ) -> dict[str, float]:
    """Each candidate chunk's fused score: its dense and BM25 scores, each divided by the best of its
    ranking, weighted; a chunk missing from a ranking scores 0 there. The document's BM25 score (scaled
    and weighted the same way) is added to the document's best chunk only: it says which article to read,
    and adding it to every chunk of a long article would crowd the other articles out of the k passages."""
    dense_weight, chunk_weight, document_weight = weights

    def scaled(ranking: Sequence[tuple[str, float]]) -> dict[str, float]:
        best = max((s for _, s in ranking), default=0.0)
        if best > 0:
            return {name: s / best for name, s in ranking}
        # No positive score (dense hits that are all dissimilar): keep them, in their order, near zero.
        return {name: -position * 1e-9 for position, (name, _) in enumerate(ranking)}

    by_dense, by_keyword, by_document = scaled(dense), scaled(keyword), scaled(documents)
    fused = {chunk: dense_weight * by_dense.get(chunk, 0.0) + chunk_weight * by_keyword.get(chunk, 0.0)
             for chunk in {**by_dense, **by_keyword}}
    best_of: dict[str, str] = {}
    for chunk in sorted(fused, key=lambda c: (-fused[c], c)):
        best_of.setdefault(source_of.get(chunk, ""), chunk)
    for source, chunk in best_of.items():
        fused[chunk] += document_weight * by_document.get(source, 0.0)
    return fused


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
