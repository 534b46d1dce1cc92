"""Concurrent dense queries and query embeddings are sent as one call (rag.batching), each caller still
getting its own result, and a failed call reaching every caller of its round."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.batching import Coalescer


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_callers_arriving_while_a_round_runs_share_the_next_one():
    release = threading.Event()
    rounds: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        rounds.append(list(items))
        if len(rounds) == 1:
            release.wait(10)
        return [i * 10 for i in items]

    coalescer = Coalescer(run, max_batch=64)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(coalescer.submit, 0)
        _wait_for(lambda: rounds)
        rest = [pool.submit(coalescer.submit, i) for i in range(1, 6)]
        _wait_for(lambda: len(coalescer._pending) == 5)
        release.set()
        assert first.result() == 0 and [f.result() for f in rest] == [10, 20, 30, 40, 50]
    assert rounds[0] == [0] and sorted(rounds[1]) == [1, 2, 3, 4, 5] and len(rounds) == 2


def test_a_round_is_at_most_max_batch():
    release = threading.Event()
    rounds: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        rounds.append(list(items))
        release.wait(10)
        return items

    coalescer = Coalescer(run, max_batch=2)
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(coalescer.submit, 0)]
        _wait_for(lambda: rounds)
        futures += [pool.submit(coalescer.submit, i) for i in range(1, 5)]
        _wait_for(lambda: len(coalescer._pending) == 4)
        release.set()
        assert [f.result() for f in futures] == [0, 1, 2, 3, 4]
    assert [len(r) for r in rounds] == [1, 2, 2]


def test_a_failed_round_fails_each_of_its_callers_and_the_next_round_runs():
    release = threading.Event()
    calls = []

    def run(items: list[str]) -> list[str]:
        calls.append(list(items))
        if len(calls) == 1:
            release.wait(10)
            return items
        if len(calls) == 2:
            raise RuntimeError("the model failed")
        return items

    coalescer = Coalescer(run)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(coalescer.submit, "a")
        _wait_for(lambda: calls)
        failing = [pool.submit(coalescer.submit, x) for x in ("b", "c")]
        _wait_for(lambda: len(coalescer._pending) == 2)
        release.set()
        assert first.result() == "a"
        for future in failing:
            with pytest.raises(RuntimeError, match="the model failed"):
                future.result()
    assert coalescer.submit("d") == "d"  # not stuck busy after a failure


def test_query_many_equals_one_query_at_a_time(seeded):
    store = seeded.searcher.store
    vectors = [seeded.searcher.embedder.get_query_embedding(q)
               for q in ("Budapest summit", "oil sanctions", "phone call length")]
    together = store.query_many(vectors, 7)
    assert together == [store.query(v, 7) for v in vectors]
    assert all(len(r) == 7 for r in together) and together[0] != together[1]


def test_concurrent_searches_share_store_queries_and_get_their_own_results(seeded, monkeypatch):
    searcher = seeded.searcher
    questions = ["Why was the Budapest summit cancelled?", "Which oil companies were sanctioned?",
                 "How long was the phone call?", "Who met in Hungary?"] * 6
    alone = {q: [p.id for p in searcher.search(q, 5)] for q in set(questions)}
    store = searcher.store
    real = type(store).query_many
    sizes: list[int] = []

    def counted(self, embeddings, n, where=None):  # the real Chroma call, counted
        sizes.append(len(embeddings))
        time.sleep(0.02)  # a slow store: later searches pile up behind this call
        return real(self, embeddings, n, where)

    monkeypatch.setattr(type(store), "query_many", counted)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda q: [p.id for p in searcher.search(q, 5)], questions))
    assert found == [alone[q] for q in questions]
    assert sum(sizes) == len(questions) and len(sizes) < len(questions) and max(sizes) > 1
