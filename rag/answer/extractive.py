"""Offline extractive answering: the retrieved sentences that answer the question, each cited.

Which sentences answer, and whether the passages answer at all, is decided by the learned model in
`rag.answer.scoring` (weights fitted on public data by `python -m rag.answer.train`). It refuses only
on evidence: a name or number of the question that no passage grounds, or a calibrated answerability
below the operating point chosen on the training data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from rag.answer.citations import ABSTENTION, Citation, citation_for, leans_on_previous
from rag.answer.scoring import AnswererModel, Candidate, candidates, default_model, featurise, missing_entities
from rag.retrieval.search import Passage
from rag.text import containment, shingles

MAX_SENTENCES = 3
REDUNDANT_COSINE = 0.8  # MiniLM cosine above which two sentences say the same (paraphrase range)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"


@dataclass
class Extract:
    answer: str
    citations: list[Citation]
    abstained: bool
    reason: str = ""
    answerability: float | None = None


def answer_extractive(question: str, passages: Sequence[Passage], embedder: Any, max_words: int = 80,
                      query_vector: Sequence[float] | None = None, model: AnswererModel | None = None) -> Extract:
    model = model or default_model()
    missing = missing_entities(question, passages)
    if missing:
        return _abstain(f"none of the retrieved passages mentions {', '.join(missing)}")
    found, answerability = score_candidates(question, in_asked_period(question, passages), embedder,
                                            query_vector, model)
    if not found:
        return _abstain("no retrieved passage has a sentence to quote")
    if answerability < model.answer_threshold:
        return _abstain("no retrieved passage answers the question closely enough", answerability)
    chosen = with_disagreements(select(found, model.include_threshold, max_words), found, model.include_threshold)
    citations = [citation_for(c.passage, c.span, i) for i, c in enumerate(chosen, start=1)]
    text = " ".join(f"{c.span.text} [{i}]" for i, c in enumerate(chosen, start=1))
    return Extract(answer=text, citations=citations, abstained=False, answerability=answerability)


def score_candidates(question: str, passages: Sequence[Passage], embedder: Any,
                     query_vector: Sequence[float] | None, model: AnswererModel) -> tuple[list[Candidate], float]:
    """The candidate sentences with their probabilities, and P(the passages answer the question)."""
    found = candidates(passages)
    vector = query_vector if query_vector is not None else embedder.get_query_embedding(question)
    featurise(question, found, vector, stored_sentence_vectors(passages, embedder))
    return found, model.score(question, found, passages)


def _abstain(reason: str, answerability: float | None = None) -> Extract:
    return Extract(answer=f"{ABSTENTION} ({reason[0].upper() + reason[1:]}.)", citations=[], abstained=True,
                   reason=reason, answerability=answerability)


def select(found: list[Candidate], include_threshold: float, max_words: int) -> list[Candidate]:
    """The best sentence, then others the model thinks answer too (not repeats), within the word budget;
    a sentence that leans on the one before it ("He said…") brings that one along. Shown grouped by
    document, in reading order."""
    ordered = sorted(found, key=lambda c: -c.probability)
    by_place = {(c.passage.source, c.span.start): c for c in found}
    chosen: list[Candidate] = []
    words = 0
    for c in ordered:
        if chosen and (c.probability < include_threshold or len(chosen) >= MAX_SENTENCES):
            break
        if c in chosen or any(_redundant(c, o) for o in chosen):
            continue
        group = [c]
        before = by_place.get((c.passage.source, c.previous.start)) if c.previous else None
        if before is not None and before not in chosen and leans_on_previous(c.span.text):
            group.insert(0, before)
        length = sum(len(g.span.text.split()) for g in group)
        if chosen and words + length > max_words:
            continue
        chosen.extend(group)
        words += length
    first_seen = {}
    for c in chosen:
        first_seen.setdefault(c.passage.source, len(first_seen))
    return sorted(chosen, key=lambda c: (first_seen[c.passage.source], c.span.start))


def with_disagreements(chosen: list[Candidate], found: list[Candidate], include_threshold: float) -> list[Candidate]:
    """Add, for a figure the answer states, the likeliest sentence of another document that gives a
    different figure for the same thing, so the answer can show both sides (see rag.answer.conflicts)."""
    from rag.answer.conflicts import find_conflicts

    added = []
    for c in sorted(found, key=lambda c: -c.probability):
        if c.probability < include_threshold or c in chosen or c.passage.source in {o.passage.source for o in chosen}:
            continue
        pairs = [(0, o.passage.source, o.span.text) for o in chosen] + [(1, c.passage.source, c.span.text)]
        if any(conflict.citations[-1] == 1 for conflict in find_conflicts(pairs)):
            added.append(c)
            break  # one other side is enough to show the disagreement
    return chosen + added


def in_asked_period(question: str, passages: Sequence[Passage]) -> Sequence[Passage]:
    """"In June, …" is a constraint: keep the passages of documents that mention June (all of them
    when none does, as news often dates events only as "on Wednesday")."""
    months = asked_months(question)
    if not months:
        return passages
    dated = {p.source for p in passages if any(re.search(rf"\b{m}\b", p.text, re.I) for m in months)}
    return [p for p in passages if p.source in dated] or passages


def asked_months(question: str) -> set[str]:
    """Months the question names (capitalised, so the verb 'may' is not May)."""
    return {m.lower() for m in re.findall(rf"\b({_MONTHS})\b", question)}


_VECTORS: dict[tuple[int, str], Any] = {}
MAX_CACHED_VECTORS = 200_000  # ~300 MB of MiniLM vectors at most


def sentence_vectors(embedder: Any, texts: list[str]) -> list[Any]:
    """Embeddings of corpus sentences, cached: the same sentences come back question after question,
    and embedding them dominated the cost of an answer."""
    model = id(getattr(embedder, "embedder", embedder))
    missing = list(dict.fromkeys(t for t in texts if (model, t) not in _VECTORS))
    if missing:
        if len(_VECTORS) + len(missing) > MAX_CACHED_VECTORS:
            _VECTORS.clear()
        for text, vector in zip(missing, embedder.get_text_embedding_batch(missing)):
            _VECTORS[(model, text)] = np.asarray(vector, dtype=np.float32)
    return [_VECTORS[(model, t)] for t in texts]


def stored_sentence_vectors(passages: Sequence[Passage], embedder: Any) -> Callable[[list[str]], list[Any]]:
    """`vectors_of(texts)` for the passages' sentences: the vectors stored with each chunk at ingest
    (rag.ingestion.sentence_store), so answering calls no model; a sentence without one (an index from before
    they were stored) is embedded, once."""
    from rag.ingestion import sentence_store

    table: dict[str, Any] = {}
    for p in passages:
        stored = sentence_store.decode(p.sentence_vectors)
        for (start, end), vector in stored.items():
            if p.start <= start and end <= p.end:
                table.setdefault(p.text[start - p.start:end - p.start], vector)

    def vectors_of(texts: list[str]) -> list[Any]:
        missing = [t for t in dict.fromkeys(texts) if t not in table]
        if missing:
            table.update(zip(missing, sentence_vectors(embedder, missing)))
        return [table[t] for t in texts]

    return vectors_of


def _redundant(a: Candidate, b: Candidate) -> bool:
    cosine = float(a.vector @ b.vector / (np.linalg.norm(a.vector) * np.linalg.norm(b.vector) + 1e-9))
    return cosine > REDUNDANT_COSINE or containment(shingles(a.span.text), shingles(b.span.text)) > 0.5
