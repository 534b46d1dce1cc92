"""Offline extractive answering: the few retrieved sentences that best answer the question, each cited.

Scoring mixes meaning (MiniLM cosine between question and sentence) and words (share of the
question's content words the sentence contains), removes near-repeats, and abstains when the
evidence does not cover the question.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rag.answer.citations import ABSTENTION, Citation, candidate_sentences, citation_for
from rag.retrieval import Passage
from rag.text import STOPWORDS, Span, containment, content_terms, normalise, sentence_spans, shingles

SEMANTIC_WEIGHT, LEXICAL_WEIGHT, RANK_WEIGHT, ANSWER_TYPE_WEIGHT = 0.6, 0.4, 0.03, 0.08
CONTEXT_SHARE = 0.5
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DATE_WORD = re.compile(rf"({_MONTHS}|monday|tuesday|wednesday|thursday|friday|saturday|sunday)", re.I)
STRONG_SUPPORT = 0.75  # evidence this close answers even when the question uses a word no passage has
MIN_SUPPORT = 0.42  # calibrated on the seed corpus: answerable questions score >= 0.5, off-topic ones < 0.4
KEEP_RATIO = 0.85  # further sentences must score within 15% of the best
TYPED_RATIO = 0.65  # a sentence of the asked-for kind may lead if it scores within 35% of the best
REDUNDANT_COSINE = 0.8
MAX_SENTENCES = 3
_AUXILIARIES = {"is", "are", "was", "were", "has", "have", "had", "did", "do", "does", "will", "would", "can",
                "could", "should", "been", "be"}
_QUESTION_WORDS = {"who", "what", "when", "where", "why", "how", "which", "whom", "whose", "did", "does", "do",
                   "is", "are", "was", "were", "can", "could", "will", "would", "should", "has", "have", "had"}


@dataclass
class Extract:
    answer: str
    citations: list[Citation]
    abstained: bool
    reason: str = ""


@dataclass
class _Candidate:
    passage: Passage
    span: Span
    score: float
    vector: Any


def answer_extractive(question: str, passages: Sequence[Passage], embedder: Any, max_words: int = 80,
                      query_vector: Sequence[float] | None = None) -> Extract:
    missing = missing_entities(question, passages)
    if missing:
        return _abstain(f"none of the retrieved passages mentions {', '.join(missing)}")
    candidates = _score(question, in_asked_period(question, passages), embedder, query_vector)
    if not candidates or candidates[0].score < MIN_SUPPORT:
        return _abstain("no retrieved passage answers the question closely enough")
    unsupported = missing_terms(question, passages)
    if unsupported and candidates[0].score < STRONG_SUPPORT:
        return _abstain(f"none of the retrieved passages mentions {', '.join(unsupported)}")
    kind = question_kind(question)
    if kind and kind.counted:
        nouns = counted_nouns(question)
        candidates = [c for c in candidates if not nouns or counts(c.span.text, nouns, kind)]
        if not candidates or candidates[0].score < MIN_SUPPORT:
            return _abstain("no retrieved sentence gives that number")
    chosen = _select(candidates, max_words, question)
    citations = [citation_for(c.passage, c.span, i) for i, c in enumerate(chosen, start=1)]
    text = " ".join(f"{c.span.text} [{i}]" for i, c in enumerate(chosen, start=1))
    return Extract(answer=text, citations=citations, abstained=False)


def _abstain(reason: str) -> Extract:
    return Extract(answer=f"{ABSTENTION} ({reason[0].upper() + reason[1:]}.)", citations=[], abstained=True,
                   reason=reason)


def missing_entities(question: str, passages: Sequence[Passage]) -> list[str]:
    """Names and numbers in the question that no retrieved passage contains (e.g. 'Macron', 'Super Bowl')."""
    haystack = normalise(" ".join(p.text for p in passages))
    missing = []
    for entity in question_entities(question):
        # Compare on a 5-letter prefix of each word so 'Donbass' meets 'Donbas' and 'Russia's' meets 'Russia'.
        parts = [normalise(w)[:5] for w in entity.split()]
        if not all(re.search(r"\b" + re.escape(p), haystack) for p in parts):
            missing.append(entity)
    return missing


def question_entities(question: str) -> list[str]:
    """Runs of capitalised words (not the sentence-initial question word) and numbers."""
    tokens = re.findall(r"[\w’'.-]+", question)
    entities: list[str] = []
    run: list[str] = []
    for i, token in enumerate(tokens):
        word = token.strip(".’'-")
        is_name = word[:1].isupper() and not (i == 0 and word.lower() in _QUESTION_WORDS | STOPWORDS)
        if (is_name and word.lower() not in _QUESTION_WORDS) or re.fullmatch(r"\d[\d,.]*", word):
            run.append(word)
            continue
        if run:
            entities.append(" ".join(run))
        run = []
    if run:
        entities.append(" ".join(run))
    # A month or weekday dates the question rather than naming what it asks about: news says "on Wednesday".
    return [e for e in entities if e.lower() not in STOPWORDS and not _DATE_WORD.fullmatch(e)]


def _score(question: str, passages: Sequence[Passage], embedder: Any,
           query_vector: Sequence[float] | None = None) -> list[_Candidate]:
    pool = _sentence_pool(passages)
    if not pool:
        return []
    q = np.asarray(query_vector if query_vector is not None else embedder.get_query_embedding(question))
    vectors = np.asarray(sentence_vectors(embedder, [s.text for _, _, s, _ in pool]))
    cosines = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q) + 1e-9)
    terms = content_terms(question) - _month_terms(question)
    weights = _term_weights(terms, [content_terms(s.text) for _, _, s, _ in pool])
    scored = []
    for (rank, passage, span, previous), cosine, vector in zip(pool, cosines, vectors):
        score = (SEMANTIC_WEIGHT * float(cosine) + LEXICAL_WEIGHT * _coverage(weights, span.text, previous)
                 + RANK_WEIGHT / rank + ANSWER_TYPE_WEIGHT * answer_type_match(question, span.text))
        scored.append(_Candidate(passage, span, score, vector))
    return sorted(scored, key=lambda c: -c.score)


def in_asked_period(question: str, passages: Sequence[Passage]) -> Sequence[Passage]:
    """"In June, …" is a constraint: keep the passages of documents that mention June (all of them
    when none does, as news often dates events only as "on Wednesday")."""
    months = asked_months(question)
    if not months:
        return passages
    dated = {p.source for p in passages if any(re.search(rf"\b{m}\b", p.text, re.I) for m in months)}
    return [p for p in passages if p.source in dated] or passages


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


def _sentence_pool(passages: Sequence[Passage]) -> list[tuple[int, Passage, Span, str]]:
    """(rank, passage, sentence, the sentence before it) for every answerable sentence, each once."""
    seen: set[tuple[str, int]] = set()
    pool = []
    for rank, passage in enumerate(passages, start=1):
        previous = {s.start: p.text for p, s in zip([Span(0, 0, "")] + sentence_spans(passage.text, passage.start),
                                                     sentence_spans(passage.text, passage.start))}
        for span in candidate_sentences(passage):
            if (passage.source, span.start) not in seen:  # overlapping chunks repeat sentences
                seen.add((passage.source, span.start))
                pool.append((rank, passage, span, previous.get(span.start, "")))
    return pool


def _term_weights(terms: set[str], sentences: list[set[str]]) -> dict[str, float]:
    """IDF of each question word among the candidate sentences: 'defense' tells more than 'minister'
    when every retrieved sentence mentions a minister."""
    return {t: math.log(1 + len(sentences) / (1 + sum(t in s for s in sentences))) for t in terms}


def _coverage(weights: dict[str, float], sentence: str, previous: str) -> float:
    """Weighted share of the question's content words in the sentence; words only in the sentence before
    count at CONTEXT_SHARE, since "He was travelling…" is about whoever that sentence named."""
    total = sum(weights.values())
    if not total:
        return 0.0
    own = weights.keys() & content_terms(sentence)
    context = (weights.keys() - own) & content_terms(previous) if previous else set()
    return (sum(weights[t] for t in own) + CONTEXT_SHARE * sum(weights[t] for t in context)) / total


def asked_months(question: str) -> set[str]:
    """Months the question names (capitalised, so the verb 'may' is not May)."""
    return {m.lower() for m in re.findall(rf"\b({_MONTHS.title()})\b", question)}


def _month_terms(question: str) -> set[str]:
    return content_terms(" ".join(asked_months(question)))


@dataclass(frozen=True)
class QuestionKind:
    name: str
    question: re.Pattern
    sentence: re.Pattern
    counted: bool = False
    explained: bool = False  # answers run over several sentences: the next one may carry on


@lru_cache(maxsize=1)
def _question_rules() -> tuple[list[QuestionKind], frozenset[str]]:
    data = tomllib.loads((Path(__file__).parent.parent / "data" / "questions.toml").read_text(encoding="utf-8"))
    kinds = [QuestionKind(k["name"], re.compile(k["question"], re.I),
                          re.compile(k["sentence"], 0 if k.get("case_sensitive") else re.I), k.get("counted", False),
                          k.get("explained", False))
             for k in data["kind"]]
    return kinds, frozenset(data["framing_words"].split())


def question_kind(question: str) -> QuestionKind | None:
    """What the question asks for (a reason, a date, an amount, a place…), from rag/data/questions.toml."""
    return next((kind for kind in _question_rules()[0] if kind.question.search(question)), None)


def asks_for_type(question: str) -> bool:
    return question_kind(question) is not None


def answer_type_match(question: str, sentence: str) -> float:
    """1.0 when the sentence holds the kind of thing the question asks for (a reason, a date, an amount, a name)."""
    kind = question_kind(question)
    if kind:
        return 1.0 if kind.sentence.search(sentence) else 0.0
    if re.match(r"^\s*(who|which|whom|whose)\b", question, re.I):
        asked = {w.lower() for w in re.findall(r"\b[A-Z][\w-]+", question)}
        names = {w.lower() for w in re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w-]+", sentence)}
        return 1.0 if names - asked - STOPWORDS else 0.0
    return 0.0


def counted_nouns(question: str) -> set[str]:
    """What "how many/much" counts: the first content words after it, before the verb ("how many Ukrainian
    children have been…" -> children); stems."""
    match = re.search(r"\bhow (?:many|much)\s+(.*)", question, re.I)
    if not match:
        return set()
    nouns = []
    for word in re.findall(r"[\w'’-]+", match.group(1)):
        if word.lower() in _AUXILIARIES or len(nouns) == 2:
            break
        if word[:1].islower() and word.lower() not in STOPWORDS:
            nouns.append(word)
    return content_terms(" ".join(nouns))


def counts(sentence: str, nouns: set[str], kind: QuestionKind) -> bool:
    """Whether a number in the sentence counts one of the nouns ("82 senators", "five days after")."""
    tokens = re.findall(r"[\w'’%-]+", sentence)
    for i, token in enumerate(tokens):
        if kind.sentence.fullmatch(token) or kind.sentence.match(token) and token[:1].isdigit():
            if nouns & content_terms(" ".join(tokens[i + 1:i + 4])):
                return True
    return False


_ASKED_VERB = re.compile(r"\b(?:did|does|do|will|would|can|could|should|to)\s+"
                         r"(?:(?:[A-Z][\w'’.-]*|the|a|an|his|her|their|its)\s+)*([a-z]+)")


def _asked_verbs(question: str) -> set[str]:
    """The verb of "why did Trump scrap…": news uses its own (cancel, call off), so a verb missing from
    the passages is no reason to abstain; a missing noun ('ambassador', 'revenue') is."""
    return {m.group(1) for m in _ASKED_VERB.finditer(question)}


def missing_terms(question: str, passages: Sequence[Passage]) -> list[str]:
    """Words the question is about (not names, not framing words like 'hold' or 'city') that no retrieved
    passage contains, even by stem: 'ambassador', 'kilometres'."""
    haystack = normalise(" ".join(p.text for p in passages))
    present = content_terms(haystack)
    framing = _question_rules()[1] | _asked_verbs(question)
    missing = []
    for word in re.findall(r"[\w'’]+", question):
        lower = normalise(word).strip("'")
        if (len(lower) < 3 or word[:1].isupper() or lower in STOPWORDS | framing | _QUESTION_WORDS
                or _DATE_WORD.fullmatch(lower) or lower.isdigit()):
            continue
        if not (content_terms(lower) & present or re.search(r"\b" + re.escape(lower[:5]), haystack)):
            missing.append(word)
    return missing


def _select(candidates: list[_Candidate], max_words: int, question: str) -> list[_Candidate]:
    """Best sentence first (preferring one of the asked-for kind: a reason, a date, an amount),
    then other close runners-up that add something, within the word budget."""
    best = candidates[0].score
    typed = [c for c in candidates if c.score >= TYPED_RATIO * best and answer_type_match(question, c.span.text)]
    first = typed[0] if typed and asks_for_type(question) else candidates[0]
    chosen = [first]
    words = len(first.span.text.split())
    kind = question_kind(question)
    follower = _next_sentence(first, candidates) if kind and kind.explained else None
    if follower and kind.sentence.search(follower.span.text) and words + len(follower.span.text.split()) <= max_words:
        chosen.append(follower)  # an explanation often runs on into the next sentence ("… revealed significant differences")
        words += len(follower.span.text.split())
    for c in candidates:
        if len(chosen) == MAX_SENTENCES or c.score < KEEP_RATIO * best:
            break
        length = len(c.span.text.split())
        if c in chosen or words + length > max_words or any(_redundant(c, o) for o in chosen):
            continue
        chosen.append(c)
        words += length
    return chosen


def _next_sentence(current: _Candidate, candidates: list[_Candidate]) -> _Candidate | None:
    after = [c for c in candidates if c.passage.source == current.passage.source and c.span.start >= current.span.end]
    return min(after, key=lambda c: c.span.start, default=None)


def _redundant(a: _Candidate, b: _Candidate) -> bool:
    cosine = float(a.vector @ b.vector / (np.linalg.norm(a.vector) * np.linalg.norm(b.vector) + 1e-9))
    return cosine > REDUNDANT_COSINE or containment(shingles(a.span.text), shingles(b.span.text)) > 0.5
