"""Test-only: SIGKILL this process at a chosen moment of an ingest (RAG_TEST_KILL_AT="<point>:<n>",
the n-th call of that point). The kill fires 2 ms into the call, i.e. while it is running.
Points: embed (a batch of embeddings), upsert (a Chroma write), keyword (saving the BM25 index),
manifest (saving the manifest), publish (writing the collection's published digest), delete."""

import os

import netguard  # noqa: F401  (this file shadows tests/netguard/sitecustomize.py, so keep its guard)

if os.environ.get("RAG_TEST_KILL_AT") or os.environ.get("RAG_TEST_FAIL_EMBED_AT"):
    import rag.ingestion.incremental

    # Batches of 64 chunks (the tests count on it), so the tests' small corpus spans three of them; a
    # real ingest writes 512 at a time, and what a kill or failure leaves is whole batches either way.
    rag.ingestion.incremental.FIRST_BATCH = rag.ingestion.incremental.EMBED_BATCH = 64

point, _, nth = os.environ.get("RAG_TEST_KILL_AT", "").partition(":")
if point:
    import signal
    import threading

    calls = {"n": 0}

    def _die_during(real):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == int(nth or 1):
                threading.Timer(0.002, os.kill, (os.getpid(), signal.SIGKILL)).start()
            return real(*args, **kwargs)

        return wrapper

    import rag.ingestion.incremental
    import rag.retrieval.keyword
    import rag.ingestion.manifest
    import vectorstore.chroma

    targets = {"upsert": (vectorstore.chroma.ChunkStore, "upsert"), "publish": (vectorstore.chroma.ChunkStore, "publish"),
               "delete": (vectorstore.chroma.ChunkStore, "delete"), "keyword": (rag.retrieval.keyword.KeywordIndex, "save"),
               "manifest": (rag.ingestion.manifest.Manifest, "save"), "embed": (rag.ingestion.incremental, "_embed_batch")}
    owner, name = targets[point]
    setattr(owner, name, _die_during(getattr(owner, name)))

fail_at = os.environ.get("RAG_TEST_FAIL_EMBED_AT")
if fail_at:  # a FAKE embedding failure: the n-th batch raises, as a model or endpoint error would
    import rag.ingestion.incremental

    real_batch, count = rag.ingestion.incremental._embed_batch, {"n": 0}

    class _Failing:
        def __init__(self, embedder):
            self.embedder = embedder

        def get_text_embedding_batch(self, texts):
            count["n"] += 1
            if count["n"] == int(fail_at):
                raise RuntimeError("simulated model failure")
            return self.embedder.get_text_embedding_batch(texts)

    rag.ingestion.incremental._embed_batch = lambda embedder, texts: real_batch(_Failing(embedder), texts)
