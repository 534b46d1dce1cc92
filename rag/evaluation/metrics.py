"""Deterministic metric functions: retrieval at document level, fact recall, citations, latency.

No LLM judge: the same answers always score the same, so a CI gate on these cannot drift.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Callable, Iterable, Sequence

from rag.text import normalise

FACT_WINDOW_WORDS = 120
_MARKER = re.compile(r"\[(\d+)\]")


# ---- retrieval (document level)
def ranked_documents(passages: Iterable[tuple[str, Sequence[str]]]) -> list[str]:
    """The documents of ranked passages, each once, in order of first appearance.

    A passage is (source, also_in): a passage collapsed from near-duplicate documents counts for
    all of them, its own source first.
    """
    ranked: list[str] = []
    for source, also_in in passages:
        for doc in (source, *also_in):
            if doc not in ranked:
                ranked.append(doc)
    return ranked


def hit(ranked: Sequence[str], relevant: set[str]) -> float:
    return 1.0 if any(doc in relevant for doc in ranked) else 0.0


def recall(ranked: Sequence[str], relevant: set[str]) -> float:
    return len(relevant.intersection(ranked)) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    return next((1.0 / i for i, doc in enumerate(ranked, start=1) if doc in relevant), 0.0)


def ndcg(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary-relevance nDCG over the first k documents.

    The ideal ranking is built from the gold sources (all of them first, capped at k), never from
    what was retrieved, so missing a relevant document always costs.
    """
    dcg = sum(1.0 / math.log2(i + 1) for i, doc in enumerate(ranked[:k], start=1) if doc in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


# ---- answers
def first_words(text: str, limit: int = FACT_WINDOW_WORDS) -> str:
    """The normalised text cut after `limit` words (citation markers are not words)."""
    return " ".join(normalise(_MARKER.sub(" ", text)).split()[:limit])


def phrase_in(phrase: str, text: str) -> bool:
    """Whether a normalised phrase occurs in normalised text as whole words ('two' is not in 'twofold')."""
    needle = normalise(phrase)
    return bool(needle) and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", text) is not None


def missing_facts(answer: str, facts: Sequence[Sequence[str]]) -> list[list[str]]:
    """The facts none of whose phrasings appears in the answer's first 120 words."""
    window = first_words(answer)
    return [list(phrasings) for phrasings in facts if not any(phrase_in(p, window) for p in phrasings)]


def fact_recall(answer: str, facts: Sequence[Sequence[str]]) -> float:
    return 1.0 - len(missing_facts(answer, facts)) / len(facts) if facts else 1.0


def answer_words(answer: str) -> int:
    return len(_MARKER.sub(" ", answer).split())


# ---- wording against human reference answers (SQuAD's normalisation; max over the references)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def squad_tokens(text: str) -> list[str]:
    """Lower case, punctuation and articles removed, whitespace split (the SQuAD v1.1 evaluation script)."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(answer: str, references: Sequence[str]) -> float:
    """The best token-overlap F1 of the answer (citation markers removed) against any reference."""
    predicted = squad_tokens(_MARKER.sub(" ", answer))
    return max((tokens_f1(predicted, squad_tokens(r)) for r in references), default=0.0)


def tokens_f1(predicted: list[str], reference: list[str]) -> float:
    """F1 of the token overlap (as multisets) of two token lists."""
    common = sum((Counter(predicted) & Counter(reference)).values())
    if not common:
        return 0.0
    precision, recall_ = common / len(predicted), common / len(reference)
    return 2 * precision * recall_ / (precision + recall_)


def rouge_l(answer: str, references: Sequence[str]) -> float:
    """The best ROUGE-L F-measure (longest common subsequence of SQuAD tokens) against any reference."""
    predicted = squad_tokens(_MARKER.sub(" ", answer))
    best = 0.0
    for reference in map(squad_tokens, references):
        lcs = _lcs(predicted, reference)
        if lcs:
            precision, recall_ = lcs / len(predicted), lcs / len(reference)
            best = max(best, 2 * precision * recall_ / (precision + recall_))
    return best


def _lcs(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def citation_problems(answer: str, citations: Sequence[dict], document_text: Callable[[str], str]) -> list[str]:
    """Why each citation is invalid: a marker with no citation, or a quote that is not the source text.

    `citations` are `Citation` dicts; `document_text(source)` returns the cleaned text their offsets index.
    """
    problems: list[str] = []
    known = {c["id"] for c in citations}
    for number in sorted(_markers(answer, citations) - known):
        problems.append(f"marker [{number}] has no citation")
    for c in citations:
        try:
            text = document_text(c["source"])
        except Exception as exc:  # noqa: BLE001 - any failure to read the source makes the citation unverifiable
            problems.append(f"[{c['id']}] cites {c['source']}, which cannot be read: {exc}")
            continue
        if not 0 <= c["start"] < c["end"] <= len(text) or text[c["start"]:c["end"]] != c["quote"]:
            problems.append(f"[{c['id']}] quote is not the text of {c['source']} at {c['start']}-{c['end']}")
    return problems


def citation_checks(answer: str, citations: Sequence[dict]) -> int:
    """How many things citation validity checks in one answer: each citation and each dangling marker."""
    known = {c["id"] for c in citations}
    return len(citations) + len(_markers(answer, citations) - known)


def _markers(answer: str, citations: Sequence[dict]) -> set[int]:
    """The citation markers of an answer. A bracketed number inside a quoted source sentence ("74 [14] years",
    a Wikipedia footnote) is the source's text, not a marker."""
    for c in citations:
        answer = answer.replace(c["quote"], " ")
    return {int(m) for m in _MARKER.findall(answer)}


# ---- aggregation
def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): always one of the measured values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
