"""Optional LLM judges (LlamaIndex's faithfulness and correctness evaluators): reported, never gated.

An LLM's verdicts drift between runs and models, so they sit beside the deterministic metrics as a
second opinion; the CI gate never reads them.
"""

from __future__ import annotations

from typing import Any, Sequence

from rag.config import Settings
from rag.errors import ConfigError
from rag.evaluation.gold import GoldItem
from rag.evaluation.metrics import mean


def judge_answers(items: Sequence[GoldItem], records: list[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Faithfulness (is the answer supported by its cited quotes?) and correctness (1-5 against the
    reference answer) for every answered, answerable question. Adds `judge` to each record judged."""
    from llama_index.core.evaluation import CorrectnessEvaluator, FaithfulnessEvaluator

    if not settings.openai_api_key:
        raise ConfigError("--judge needs an LLM: set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server)")
    llm = _llm(settings)
    faithfulness, correctness = FaithfulnessEvaluator(llm=llm), CorrectnessEvaluator(llm=llm)
    by_id = {item.id: item for item in items}
    faithful, scores, errors = [], [], []
    for record in records:
        if not record["answerable"] or record["abstained"] or "error" in record:
            continue
        quotes = [c["quote"] for c in record["citations"]] or ["(no citations)"]
        try:
            verdict = faithfulness.evaluate(query=record["question"], response=record["answer"], contexts=quotes)
            grade = correctness.evaluate(query=record["question"], response=record["answer"],
                                         reference=by_id[record["id"]].answer)
        except Exception as exc:  # noqa: BLE001 - a judge failure is reported, never fatal: it does not gate
            errors.append(f"{record['id']}: {type(exc).__name__}: {exc}")
            continue
        record["judge"] = {"faithful": verdict.passing, "correctness": grade.score, "feedback": grade.feedback}
        faithful.append(1.0 if verdict.passing else 0.0)
        if grade.score is not None:
            scores.append(grade.score)
    return {"model": settings.openai_model, "judged": len(faithful), "errors": errors,
            "metrics": {"faithfulness": mean(faithful), "correctness_mean": mean(scores)}}


def _llm(settings: Settings) -> Any:
    # OpenAILike, not OpenAI: it accepts any model name an OpenAI-compatible server serves.
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(model=settings.openai_model, api_key=settings.openai_api_key, api_base=settings.openai_base_url,
                      is_chat_model=True, temperature=0.0, timeout=settings.llm_timeout,
                      max_retries=settings.llm_max_retries, context_window=8192)
