"""`rag bench`: drive `rag serve` on loopback with concurrent clients and print what it sustains.

A benchmark, not a test: it prints throughput, latency percentiles and errors per endpoint, for the
embedded store and (with --chroma) for a `chroma run` server, each on a fresh index of the corpus.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rag.config import PROJECT_DIR, Settings
from rag.errors import StoreUnavailable
from rag.evaluation.metrics import percentile

QUESTIONS_FILE = PROJECT_DIR / "evals" / "gold.jsonl"
FALLBACK_QUESTIONS = ["Why was the Budapest summit cancelled?", "Which oil companies were sanctioned?"]


def run_bench(settings: Settings, *, clients: int, seconds: float, ask_share: float, with_chroma: bool,
              url: str | None, workers: int = 2, distinct: bool = True) -> int:
    questions = _questions()
    rows: list[tuple[str, dict[str, Any]]] = []
    if url:
        rows.append((url, asyncio.run(drive(url, questions, clients, seconds, ask_share, distinct))))
    else:
        with _served(settings, chroma=False, workers=workers) as served:
            rows.append(("embedded store", asyncio.run(drive(served, questions, clients, seconds, ask_share,
                                                             distinct))))
        if with_chroma:
            with _served(settings, chroma=True, workers=workers) as served:
                rows.append(("chroma server", asyncio.run(drive(served, questions, clients, seconds, ask_share,
                                                                distinct))))
    print(format_table(rows, clients, seconds, workers if not url else None, distinct))
    return 0 if all(stats["errors"] == 0 for _, result in rows for stats in result.values()) else 1


async def drive(url: str, questions: list[str], clients: int, seconds: float,
                ask_share: float, distinct: bool = True) -> dict[str, dict[str, Any]]:
    """`clients` loops, each sending its next request as soon as the last one answered, until the time is up.
    With `distinct`, the questions are sent as variants (see `variants`) in a cycle longer than the
    server's query-vector cache, so every request is embedded.

    aiohttp rather than httpx: the load generator shares the machine with the server, and aiohttp's
    client spends a fraction of httpx's CPU per request. The CPU it did use is reported (`client_cpu`)."""
    import aiohttp

    samples: dict[str, list[float]] = {"/retrieve": [], "/ask": []}
    errors: dict[str, int] = {"/retrieve": 0, "/ask": 0}
    deadline = time.perf_counter() + seconds
    every = round(1 / ask_share) if ask_share > 0 else 0  # every n-th request of a client is an /ask
    texts = variants(questions) if distinct else questions
    counter = iter(range(10**9))  # one sequence shared by the clients (one event loop: no lock needed)

    async def client(number: int, http: aiohttp.ClientSession) -> None:
        sent = 0
        while time.perf_counter() < deadline:
            sent += 1
            question = (texts[next(counter) % len(texts)] if distinct
                        else questions[(number * 7 + sent) % len(questions)])
            path, body = (("/ask", {"question": question}) if every and sent % every == 0
                          else ("/retrieve", {"query": question, "k": 5}))
            started = time.perf_counter()
            try:
                async with http.post(url + path, json=body) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            samples[path].append((time.perf_counter() - started) * 1000) if ok else None
            errors[path] += not ok

    connector = aiohttp.TCPConnector(limit=clients)
    started, cpu = time.perf_counter(), time.process_time()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    elapsed = time.perf_counter() - started
    client_cpu = round(100 * (time.process_time() - cpu) / elapsed)  # % of one core
    return {path: {"requests": len(values) + errors[path], "per_second": round(len(values) / elapsed, 1),
                   "p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
                   "errors": errors[path], "client_cpu": client_cpu} for path, values in samples.items()}


def variants(questions: list[str]) -> list[str]:
    """Distinct texts no longer than the questions they come from: each question with one word left
    out, then with two, taken from the questions in turn. (Appending a number would make every query
    several word pieces longer, and so dearer to embed than the real ones.)"""
    from itertools import combinations, zip_longest

    def of(question: str) -> list[str]:
        words = question.split()
        drops = [(i,) for i in range(len(words))] + list(combinations(range(len(words)), 2))
        return [" ".join(w for i, w in enumerate(words) if i not in drop) for drop in drops if len(drop) < len(words)]

    mixed = (text for group in zip_longest(*map(of, questions)) for text in group if text is not None)
    return list(dict.fromkeys(mixed))


def format_table(rows: list[tuple[str, dict[str, dict[str, Any]]]], clients: int, seconds: float,
                 workers: int | None = None, distinct: bool = True) -> str:
    served = f", rag serve --workers {workers}" if workers else ""
    kind = "every question new" if distinct else "gold questions repeated (mostly query-vector cache hits)"
    head = f"{clients} clients, {seconds:g} s each{served}, {kind}\n\n" \
           f"{'store':<16} {'endpoint':<10} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}"
    lines = [head, "-" * len(head.splitlines()[-1])]
    for name, result in rows:
        for path, s in result.items():
            ms = [f"{s[p]:.0f}" if s[p] is not None else "–" for p in ("p50", "p95", "p99")]
            lines.append(f"{name:<16} {path:<10} {s['requests']:>8} {s['per_second']:>7} {ms[0]:>8} {ms[1]:>8} "
                         f"{ms[2]:>8} {s['errors']:>6}")
    cpu = ", ".join(f"{name} {next(iter(result.values()))['client_cpu']} %" for name, result in rows)
    lines.append(f"\nthe load generator's own CPU (of one core), on the same machine: {cpu}")
    return "\n".join(lines)


def run_answer_bench(settings: Settings, corpus: Path | None = None, gold: Path = QUESTIONS_FILE,
                     rounds: int = 3) -> int:
    """In process, no HTTP: what a warm extractive answer costs beside its retrieval. Every gold question
    is asked once to warm the caches, then `rounds` more times; prints the p50/p95 of each stage."""
    from rag.evaluation.gold import load_gold
    from rag.evaluation.runner import _corpus_files, eval_settings
    from rag.ingestion.incremental import expand_paths
    from rag.pipeline import Pipeline

    corpus = Path(corpus or settings.corpus_dir)
    pipeline = Pipeline(eval_settings(settings, corpus, _corpus_files(corpus, expand_paths)))
    pipeline.ingest([corpus])
    items = load_gold(gold)
    timings: dict[str, list[float]] = {"retrieve": [], "answer": [], "total": []}
    for round_ in range(rounds + 1):
        for item in items:
            answer = pipeline.ask(item.question, item.history, mode="extractive")
            if round_:  # the first round only warms the caches
                for stage in timings:
                    timings[stage].append(answer.timings_ms[stage])
    print(f"{len(items)} questions x {rounds} warm rounds, extractive, in process ({gold.name})\n")
    print(f"{'stage':<10} {'p50 ms':>8} {'p95 ms':>8}")
    for stage, values in timings.items():
        print(f"{stage:<10} {percentile(values, 50):>8.1f} {percentile(values, 95):>8.1f}")
    ratio = percentile(timings["answer"], 50) / max(percentile(timings["retrieve"], 50), 1e-9)
    print(f"\nanswer / retrieve at p50: {ratio:.2f}x")
    return 0


def _questions() -> list[str]:
    try:
        return [json.loads(line)["question"] for line in QUESTIONS_FILE.read_text().splitlines() if line.strip()]
    except (OSError, ValueError, KeyError):
        return FALLBACK_QUESTIONS


@contextmanager
def _served(settings: Settings, *, chroma: bool, workers: int) -> Iterator[str]:
    """A fresh index of the corpus in a temp dir, served by `rag serve` on a free loopback port."""
    from rag.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp, _chroma(Path(tmp), chroma) as env:
        local = settings.replace(data_dir=Path(tmp) / "data", chroma_host=env.get("CHROMA_HOST"),
                                 chroma_port=int(env.get("CHROMA_PORT", settings.chroma_port)))
        Pipeline(local).ingest()
        port = _free_port()
        environ = {**os.environ, **env, "RAG_DATA_DIR": str(local.data_dir), "HF_HUB_OFFLINE": "1"}
        if not chroma:
            environ.pop("CHROMA_HOST", None)
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--workers",
                                 str(workers)], env=environ,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(f"http://127.0.0.1:{port}/healthz", 90)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@contextmanager
def _chroma(tmp: Path, wanted: bool) -> Iterator[dict[str, str]]:
    if not wanted:
        yield {}
        return
    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    port = _free_port()
    proc = subprocess.Popen([chroma, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp / "chroma")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/api/v2/heartbeat", 30)
        yield {"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(port)}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _free_port() -> int:
    from rag.serving.loopback import free_port

    return free_port()


def _wait(url: str, timeout: float) -> None:
    from rag.serving.loopback import wait_for_url

    if not wait_for_url(url, timeout):
        raise StoreUnavailable(f"{url} did not come up within {timeout:g} s")
