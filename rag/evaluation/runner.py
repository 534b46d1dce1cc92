"""Run a gold set through the pipeline in an index of its own, and score every answer.

The corpus is indexed into `<data dir>/evals/<digest>/` (and its own Chroma collection), where the
digest covers the corpus files' contents and the settings that shape the index. The user's main
index is never touched, a second run over the same corpus finds its index ready, and an edited
corpus gets a fresh one.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from rag.config import Settings
from rag.errors import InputRejected, RagError
from rag.evaluation import metrics as m
from rag.evaluation.gold import GoldItem, load_gold, matches

METRIC_NAMES = ("hit_at_k", "recall_at_k", "mrr", "ndcg_at_k", "ndcg_at_10_docs", "recall_at_10_docs", "mrr_docs",
                "fact_recall", "answer_f1", "answer_rouge_l", "citation_validity", "citation_precision",
                "abstention_accuracy", "false_abstention_rate", "answer_words_mean", "latency_ms_p50",
                "latency_ms_p95", "llm_answer_rate", "support_precision_planted", "support_recall_planted")
DOC_DEPTH = 10  # BEIR's cut-off for the distinct-document ranking
DOC_POOL = 50  # passages read to find DOC_DEPTH distinct documents
ProgressCallback = Callable[[int, int], None]


@dataclass
class EvalResult:
    metrics: dict[str, float | None]
    k: int
    mode: str
    questions: list[dict[str, Any]]
    splits: dict[str, dict[str, float | None]] = field(default_factory=dict)
    gold: str = ""
    corpus: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    index: dict[str, Any] = field(default_factory=dict)  # the eval's own store, and what this run embedded
    judge: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [q for q in self.questions if not q["passed"]]


def run_eval(gold_path: Path, settings: Settings, *, corpus: Path | None = None, k: int | None = None,
             mode: str | None = None, judge: bool = False, progress: ProgressCallback | None = None,
             limit: int | None = None, sample: int | None = None) -> EvalResult:
    from rag.ingestion.incremental import display_path, expand_paths
    from rag.pipeline import Pipeline

    started = time.perf_counter()
    if k is not None and not 1 <= k <= 50:
        raise InputRejected(f"k must be between 1 and 50, got {k}")
    corpus = Path(corpus or settings.corpus_dir)
    files = _corpus_files(corpus, expand_paths)
    corpus_files = {_relative(f, corpus) for f in files}
    items = load_gold(gold_path, corpus_files=corpus_files)
    if limit is not None:
        if limit < 1:
            raise InputRejected(f"limit must be at least 1, got {limit}")
        items = items[:limit]
    if sample is not None:
        items = stratified_sample(items, sample)
    pipeline = Pipeline(eval_settings(settings, corpus, files))
    report = pipeline.ingest([corpus])
    warnings = [f"corpus file skipped: {s['path']}: {s['reason']}" for s in report.skipped]
    k = settings.k if k is None else k
    mode = settings.resolved_mode(mode)
    document_text = lru_cache(maxsize=None)(pipeline.document_text)
    records = []
    foreign: list[str | None] = [None]  # LLM mode: the previous answer's first kept sentence, planted next
    for done, item in enumerate(items, start=1):
        records.append(_evaluate(item, pipeline, k, mode, document_text, corpus, corpus_files, foreign))
        if progress:
            progress(done, len(items))
    result = EvalResult(metrics=aggregate(records), k=k, mode=mode, questions=records, gold=display_path(Path(gold_path)),
                        corpus=display_path(corpus), settings=_settings_summary(settings), warnings=warnings,
                        index={"data_dir": display_path(pipeline.settings.data_dir),
                               "documents": report.documents, "chunks": report.chunks,
                               "embedded_chunks": report.embedded_chunks})
    splits = sorted({r["split"] for r in records})
    if len(splits) > 1:  # one split (or none marked) is just "all"
        result.splits = {name: aggregate([r for r in records if r["split"] == name]) for name in splits}
    if judge:
        from rag.evaluation.judge import judge_answers

        result.judge = judge_answers(items, records, settings)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def stratified_sample(items: list[GoldItem], n: int) -> list[GoldItem]:
    """n questions, half answerable and half not where the file has both, each half the first by a hash
    of the id: the same rows on every run and machine, in file order (for slow runs, e.g. a CPU LLM)."""
    if n < 1:
        raise InputRejected(f"sample must be at least 1, got {n}")
    groups = [[i for i in items if i.answerable], [i for i in items if not i.answerable]]
    groups = [g for g in groups if g]
    shares = [n // len(groups) + (1 if j < n % len(groups) else 0) for j in range(len(groups))]
    chosen = {id(i) for g, share in zip(groups, shares)
              for i in sorted(g, key=lambda i: hashlib.sha256(i.id.encode()).hexdigest())[:share]}
    return [i for i in items if id(i) in chosen]


def eval_settings(settings: Settings, corpus: Path, files: list[Path]) -> Settings:
    """Settings for the corpus's own index, keyed by its contents and everything that shapes the index."""
    # (float32, named or not: keys as before this setting)
    precision = "" if settings.passage_precision in (None, "float32") else f"\0{settings.passage_precision}"
    digest = hashlib.sha256(f"{settings.embed_model}\0{settings.chunker_id}{precision}".encode())
    for path in files:
        digest.update(f"\0{_relative(path, corpus)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    key = digest.hexdigest()[:16]
    return settings.replace(data_dir=settings.data_dir / "evals" / key, collection=f"{settings.collection}_eval_{key}")


def _corpus_files(corpus: Path, expand_paths: Callable) -> list[Path]:
    if not corpus.exists():
        raise InputRejected(f"corpus {corpus} does not exist")
    files, _, _ = expand_paths([corpus])
    if not files:
        raise InputRejected(f"corpus {corpus} has no .txt, .md or .html files")
    return files


def _relative(path: Path | str, corpus: Path) -> str:
    """A document's path relative to the corpus directory (its name when the corpus is one file)."""
    path, root = Path(path).resolve(), corpus.resolve()
    if root.is_file():
        return path.name
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _evaluate(item: GoldItem, pipeline: Any, k: int, mode: str, document_text: Callable[[str], str],
              corpus: Path, corpus_files: set[str], foreign: list[str | None]) -> dict[str, Any]:
    record: dict[str, Any] = {"id": item.id, "split": item.split, "question": item.question,
                              "answerable": item.answerable, "sources": item.sources}
    started = time.perf_counter()
    try:
        answer = pipeline.ask(item.question, item.history, k=k, mode=mode)
    except RagError as exc:  # one bad row must not hide the other results
        return {**record, "passed": False, "error": str(exc), "reasons": [f"error: {exc}"], "abstained": False,
                "answer": "", "citations": [], "retrieved": [], "latency_ms": None,
                "fact_recall": 0.0 if item.facts else None,
                "missing_facts": item.facts, "citation_problems": [], "citation_checks": 0,
                "citations_in_sources": 0, "answer_f1": 0.0 if item.references else None,
                "answer_rouge_l": 0.0 if item.references else None,
                **_retrieval_scores([], item, corpus_files, k), **_document_scores([], item, corpus_files)}
    latency = round((time.perf_counter() - started) * 1000, 1)
    citations = [asdict(c) for c in answer.citations]
    retrieved = m.ranked_documents((_relative(p.source, corpus), [_relative(s, corpus) for s in p.also_in])
                                   for p in answer.passages[:k])
    missing = m.missing_facts(answer.answer, item.facts) if not answer.abstained else [list(f) for f in item.facts]
    spoken = "" if answer.abstained else answer.answer  # a refusal scores 0 against the references
    problems = m.citation_problems(answer.answer, citations, document_text)
    in_sources = sum(1 for c in citations if _cites_gold(c, item, corpus))
    record.update(
        answer=answer.answer, abstained=answer.abstained, mode=answer.mode, notice=answer.notice,
        citations=[{key: c[key] for key in ("id", "source", "start", "end", "quote", "also_in")} for c in citations],
        retrieved=retrieved, latency_ms=latency, answer_words=m.answer_words(answer.answer),
        fact_recall=1.0 - len(missing) / len(item.facts) if item.facts else None, missing_facts=missing,
        citation_problems=problems, citation_checks=m.citation_checks(answer.answer, citations),
        citations_in_sources=in_sources, **_retrieval_scores(retrieved, item, corpus_files, k),
        answer_f1=m.token_f1(spoken, item.references) if item.references else None,
        answer_rouge_l=m.rouge_l(spoken, item.references) if item.references else None,
        **_document_scores(_document_ranking(item, pipeline, corpus), item, corpus_files))
    if mode == "llm":
        from rag.evaluation.planting import first_kept_sentence, plant_and_check

        record.update(support=answer.support, planted=plant_and_check(answer, pipeline.searcher.embedder, foreign[0]))
        if answer.mode == "llm" and answer.support:
            foreign[0] = first_kept_sentence(answer) or foreign[0]
    record["reasons"] = _reasons(record, item)
    record["passed"] = not record["reasons"]
    return record


def _relevant(item: GoldItem, corpus_files: set[str]) -> set[str]:
    return {f for f in corpus_files if any(matches(s, f) for s in item.sources)}


def _retrieval_scores(retrieved: list[str], item: GoldItem, corpus_files: set[str], k: int) -> dict[str, Any]:
    if not item.answerable:
        return {"hit": None, "recall": None, "reciprocal_rank": None, "ndcg": None}
    relevant = _relevant(item, corpus_files)
    return {"hit": m.hit(retrieved, relevant), "recall": m.recall(retrieved, relevant),
            "reciprocal_rank": m.reciprocal_rank(retrieved, relevant), "ndcg": m.ndcg(retrieved, relevant, k),
            "missed_sources": sorted(relevant - set(retrieved))}


def _document_ranking(item: GoldItem, pipeline: Any, corpus: Path) -> list[str]:
    """Distinct documents in retrieval order, deep enough for BEIR-style scores at DOC_DEPTH."""
    if not item.answerable:
        return []
    passages = pipeline.retrieve(item.question, DOC_POOL, history=item.history)
    ranked = m.ranked_documents((_relative(p.source, corpus), [_relative(s, corpus) for s in p.also_in])
                                for p in passages)
    return ranked[:DOC_DEPTH]


def _document_scores(ranked: list[str], item: GoldItem, corpus_files: set[str]) -> dict[str, Any]:
    if not item.answerable:
        return {"ndcg_docs": None, "recall_docs": None, "reciprocal_rank_docs": None}
    relevant = _relevant(item, corpus_files)
    return {"ndcg_docs": m.ndcg(ranked, relevant, DOC_DEPTH), "recall_docs": m.recall(ranked, relevant),
            "reciprocal_rank_docs": m.reciprocal_rank(ranked, relevant)}


def _cites_gold(citation: dict[str, Any], item: GoldItem, corpus: Path) -> bool:
    docs = [_relative(d, corpus) for d in (citation["source"], *citation["also_in"])]
    return any(matches(s, d) for s in item.sources for d in docs)


def _reasons(record: dict[str, Any], item: GoldItem) -> list[str]:
    """Why a question failed, in words for the report; empty when it passed."""
    reasons = [f"invalid citation: {p}" for p in record["citation_problems"]]
    if not item.answerable:
        return reasons + ([] if record["abstained"] else ["answered a question the corpus cannot answer"])
    if record["abstained"]:
        return reasons + ["abstained on an answerable question"]
    reasons += ["missing fact: " + " | ".join(f) for f in record["missing_facts"]]
    return reasons


def aggregate(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """The metrics of a set of scored questions (None where a metric has nothing to measure)."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    answered = [r for r in records if not r["abstained"] and "error" not in r]
    checks = sum(r["citation_checks"] for r in records)
    cited = sum(len(r["citations"]) for r in answerable)
    latencies = [r["latency_ms"] for r in records if r["latency_ms"] is not None]
    values = {
        "hit_at_k": m.mean([r["hit"] for r in answerable]),
        "recall_at_k": m.mean([r["recall"] for r in answerable]),
        "mrr": m.mean([r["reciprocal_rank"] for r in answerable]),
        "ndcg_at_k": m.mean([r["ndcg"] for r in answerable]),
        "ndcg_at_10_docs": m.mean([r["ndcg_docs"] for r in answerable if r.get("ndcg_docs") is not None]),
        "recall_at_10_docs": m.mean([r["recall_docs"] for r in answerable if r.get("recall_docs") is not None]),
        "mrr_docs": m.mean([r["reciprocal_rank_docs"] for r in answerable
                            if r.get("reciprocal_rank_docs") is not None]),
        # Rows without fact phrases (benchmarks) are scored on their references instead.
        "fact_recall": m.mean([r["fact_recall"] for r in answerable if r["fact_recall"] is not None]),
        "answer_f1": m.mean([r["answer_f1"] for r in answerable if r.get("answer_f1") is not None]),
        "answer_rouge_l": m.mean([r["answer_rouge_l"] for r in answerable if r.get("answer_rouge_l") is not None]),
        "citation_validity": 1 - sum(len(r["citation_problems"]) for r in records) / checks if checks else 1.0,
        "citation_precision": sum(r["citations_in_sources"] for r in answerable) / cited if cited else None,
        "abstention_accuracy": m.mean([1.0 if r["abstained"] else 0.0 for r in unanswerable]),
        "false_abstention_rate": m.mean([1.0 if r["abstained"] else 0.0 for r in answerable]),
        "answer_words_mean": m.mean([r["answer_words"] for r in answered]),
        "latency_ms_p50": m.percentile(latencies, 50),
        "latency_ms_p95": m.percentile(latencies, 95),
        **_support_metrics(records),
    }
    return {name: None if v is None else round(v, 4) for name, v in values.items()}


def _support_metrics(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """LLM mode: the share of questions the model's own answer was used for (no fallback), and the
    support check against sentences planted into those answers (rag.evaluation.planting)."""
    if not any("planted" in r for r in records):
        return {"llm_answer_rate": None, "support_precision_planted": None, "support_recall_planted": None}
    counts = [r["planted"] for r in records if r.get("planted")]
    planted, caught = sum(c["planted"] for c in counts), sum(c["caught"] for c in counts)
    false_alarms = sum(c["own_flagged"] for c in counts)
    return {"llm_answer_rate": m.mean([1.0 if r.get("mode") == "llm" else 0.0 for r in records]),
            "support_precision_planted": caught / (caught + false_alarms) if caught + false_alarms else None,
            "support_recall_planted": caught / planted if planted else None}


def _settings_summary(settings: Settings) -> dict[str, Any]:
    return {"embed_model": settings.embed_model, "passage_precision": settings.passage_precision or "float32",
            "chunker": settings.chunker_id,
            "llm_model": settings.openai_model if settings.resolved_mode(None) == "llm" else None}
