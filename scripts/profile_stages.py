"""Where a question's time goes on an existing index, stage by stage (README "At scale", docs/PERFORMANCE.md).

    RAG_DATA_DIR=DIR python scripts/profile_stages.py cold            # a fresh process's start-up
    RAG_DATA_DIR=DIR python scripts/profile_stages.py query CLAIMS    # first-seen questions, p50/p95
    RAG_DATA_DIR=DIR python scripts/profile_stages.py first-seen GOLD.jsonl FROM TO  # whole retrieves, answers

`cold` times each thing a cold `rag ask` loads, one after another (in `rag ask` the model and BM25 load
while Chroma opens). `query` times, for each question of CLAIMS (a JSON list of strings, e.g. the
`claims.json` that `rag bench --scale N --workdir DIR` leaves in `DIR/N/`): the query embedding, Chroma's
vector query, BM25, Chroma's `get()` of the 20 best dense candidates' records, then whole searches of
the questions with a word added (so no cached vector or record is reused). `first-seen` takes the
questions of rows FROM..TO of a gold file (pick rows never asked of this index): whole retrieves (k=10)
of the first half, whole extractive answers of the second, p50/p95.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from typing import Any, Callable

from rag.retrieval.search import CANDIDATES_PER_RETRIEVER as CANDIDATES

RECORDS = 20  # 2k records for k=10, as HybridSearch reads them


def _timed(name: str, call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = call()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:34s} {time.perf_counter() - started:6.3f} s   peak RSS {peak:5.0f} MB", flush=True)
    return result


def cold() -> None:
    from rag.config import Settings
    from rag.embedding.models import embedding_dimension, get_embedder
    from rag.retrieval.keyword import KeywordIndex, import_bm25s
    from rag.ingestion.manifest import Manifest

    settings = Settings.from_env()
    _timed("manifest", lambda: Manifest.read(settings.data_dir))
    _timed("import bm25s", import_bm25s)
    _timed("BM25 (memory-mapped)", lambda: KeywordIndex.load(settings.data_dir / "keyword"))
    embedder = _timed("embedding model", lambda: get_embedder(settings))

    def open_chroma() -> Any:
        from vectorstore import open_store

        return open_store(settings, settings.embed_model, embedding_dimension(settings.embed_model), create=False)

    store = _timed("import and open Chroma", open_chroma)
    vector = embedder.get_query_embedding("why was the summit cancelled")
    _timed("first vector query (loads HNSW)", lambda: store.query(vector, CANDIDATES))


def query(claims_file: str) -> None:
    from rag.config import Settings
    from rag.pipeline import Pipeline

    search = Pipeline(Settings.from_env()).searcher
    claims = json.loads(open(claims_file, encoding="utf-8").read())[:100]
    search.search("warm up the model and the store", k=10)
    times: dict[str, list[float]] = {n: [] for n in ("embedding", "vector query", "BM25", "get() records", "search")}

    def lap(name: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = call()
        times[name].append((time.perf_counter() - started) * 1000)
        return result

    for claim in claims:
        vector = lap("embedding", lambda: search.embedder.get_query_embedding(claim))
        dense = lap("vector query", lambda: search.store.query(vector, CANDIDATES))
        lap("BM25", lambda: search._keyword.search_both(claim, CANDIDATES, CANDIDATES))
        lap("get() records", lambda: search.store.get([i for i, _ in dense[:RECORDS]]))
    for claim in claims:
        lap("search", lambda: search.search(claim + " today", k=10))
    for name, values in times.items():
        values.sort()
        p95 = values[max(0, round(0.95 * len(values)) - 1)]
        print(f"{name:16s} p50 {statistics.median(values):6.1f} ms   p95 {p95:6.1f} ms")


def first_seen(gold: str, start: int, end: int) -> None:
    from rag.config import Settings
    from rag.pipeline import Pipeline

    rows = [json.loads(line) for line in open(gold, encoding="utf-8") if line.strip()][start:end]
    questions = [row["question"] for row in rows]
    half = len(questions) // 2
    pipeline = Pipeline(Settings.from_env())
    pipeline.retrieve("warm up the model and the store", 10)
    for name, call, asked in [("retrieve", lambda q: pipeline.retrieve(q, 10), questions[:half]),
                              ("ask", lambda q: pipeline.ask(q, mode="extractive"), questions[half:])]:
        times = []
        for question in asked:
            started = time.perf_counter()
            call(question)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        print(f"{name:9s} p50 {statistics.median(times):6.1f} ms   p95 {times[max(0, round(0.95 * len(times)) - 1)]:6.1f} ms"
              f"   ({len(times)} questions)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["cold"]:
        cold()
    elif sys.argv[1:2] == ["query"] and len(sys.argv) == 3:
        query(sys.argv[2])
    elif sys.argv[1:2] == ["first-seen"] and len(sys.argv) == 5:
        first_seen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
