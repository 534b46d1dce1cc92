"""The learned part of the offline answerer: how likely each retrieved sentence answers the question,
and how likely the retrieved passages answer it at all.

Both are logistic models over a handful of signals (MiniLM similarity, IDF-weighted word coverage,
names and numbers shared, retrieval rank, position), fitted by `python -m rag.answer.train` on the
public ClapNQ benchmark and the project's dev questions. The weights and the two operating points
live in `rag/data/answerer.json`; nothing here is set by hand.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rag.answer.citations import candidate_sentences
from rag.retrieval.search import Passage
from rag.text import STOPWORDS, Span, content_terms, normalise, sentence_spans

WEIGHTS_FILE = Path(__file__).parent.parent / "data" / "answerer.json"
KINDS_FILE = Path(__file__).parent.parent / "data" / "questions.toml"

SENTENCE_FEATURES = ("cosine", "cosine_gap", "context_cosine", "coverage", "coverage_gap", "context_coverage",
                     "names", "novelty", "rank", "position", "length", "passage_cosine", "passage_keyword",
                     "lead", "cosine_rank", "coverage_rank", "asks_kind", "kind_match")
QUESTION_FEATURES = ("best_logit", "top3_logit", "best_cosine", "best_coverage", "grounded")

_QUESTION_WORDS = {"who", "what", "when", "where", "why", "how", "which", "whom", "whose", "did", "does", "do",
                   "is", "are", "was", "were", "can", "could", "will", "would", "should", "has", "have", "had",
                   "tell", "give", "list", "summarize", "summarise", "describe", "explain", "show"}
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass
class Candidate:
    """One retrieved sentence the answer may quote, with its signals and (once scored) its probability."""

    passage: Passage
    span: Span
    rank: int  # of its passage in the retrieval, from 1
    previous: Span | None  # the sentence before it in the document, when the passage holds it
    vector: Any
    features: np.ndarray | None = None
    probability: float = 0.0
    logit: float = 0.0


# ---- question parts
def question_entities(question: str) -> list[str]:
    """Names (runs of capitalised words, not the opening question word) and numbers the question names."""
    tokens = re.findall(r"[\w’'.-]+", question)
    entities: list[str] = []
    run: list[str] = []
    for i, token in enumerate(tokens):
        word = re.sub(r"['’]s$", "", token).strip(".’'-")  # "What's", "Russia's"
        lower = word.lower()
        is_name = (word[:1].isupper() and lower not in _QUESTION_WORDS and lower not in STOPWORDS
                   and lower not in _MONTHS and not (i == 0 and lower in STOPWORDS))
        if is_name or re.fullmatch(r"\d[\d,.]*", word):
            run.append(word)
            continue
        if run:
            entities.append(" ".join(run))
        run = []
    if run:
        entities.append(" ".join(run))
    return entities


def grounded(entity: str, haystack: str) -> bool:
    """Whether a question name or number is in the text: a name by its last word or all of its words
    ("Steve Witkoff" by "Witkoff"), each word by its first five letters ("Donbass" meets "Donbas",
    plurals and possessives meet their stem)."""
    parts = [normalise(w)[:5] for w in entity.split()]
    found = [bool(re.search(r"(?<!\w)" + re.escape(p), haystack)) for p in parts]
    return all(found) or (len(parts) > 1 and found[-1] and len(parts[-1]) >= 3)


def missing_entities(question: str, passages: Sequence[Passage]) -> list[str]:
    """The question's names and numbers that no retrieved passage grounds (e.g. 'Macron', 'Super Bowl')."""
    haystack = normalise(" ".join(p.text for p in passages))
    return [e for e in question_entities(question) if not grounded(e, haystack)]


# ---- candidates and their signals
def candidates(passages: Sequence[Passage]) -> list[Candidate]:
    """Every sentence of the passages that can stand as a cited claim, each once (chunks overlap)."""
    seen: set[tuple[str, int]] = set()
    found = []
    for rank, passage in enumerate(passages, start=1):
        spans = sentence_spans(passage.text, passage.start)
        before = {s.start: p for p, s in zip([None, *spans], spans)}
        for span in candidate_sentences(passage):
            if (passage.source, span.start) not in seen:
                seen.add((passage.source, span.start))
                found.append(Candidate(passage, span, rank, before.get(span.start), None))
    return found


def featurise(question: str, found: list[Candidate], query_vector: Any, vectors_of) -> None:
    """Fill each candidate's feature vector. `vectors_of(texts)` embeds sentences (cached by the caller)."""
    if not found:
        return
    q = np.asarray(query_vector, dtype=np.float32)
    q = q / (np.linalg.norm(q) + 1e-9)
    texts = [c.span.text for c in found]
    previous = [c.previous.text if c.previous else "" for c in found]
    vectors = np.asarray(vectors_of(list(dict.fromkeys([*texts, *(p for p in previous if p)]))), dtype=np.float32)
    index = {t: i for i, t in enumerate(dict.fromkeys([*texts, *(p for p in previous if p)]))}
    vectors = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9)
    own = vectors[[index[t] for t in texts]]
    cosines = own @ q
    context = np.array([own[i] + vectors[index[p]] if p else own[i] for i, p in enumerate(previous)])
    context_cosines = context @ q / (np.linalg.norm(context, axis=1) + 1e-9)
    terms = content_terms(question)
    weights = _idf(terms, [content_terms(t) for t in texts])
    coverage = np.array([_coverage(weights, content_terms(t)) for t in texts])
    context_coverage = np.array([_coverage({w: v for w, v in weights.items() if w not in content_terms(t)},
                                           content_terms(p), total=sum(weights.values())) if p else 0.0
                                 for t, p in zip(texts, previous)])
    entities = question_entities(question)
    kind = question_kind(question)
    cosine_rank, coverage_rank = (-cosines).argsort().argsort(), (-coverage).argsort().argsort()
    keyword_best = max((c.passage.keyword_score or 0.0) for c in found) or 1.0
    first_of_passage: dict[tuple[str, int], int] = {}
    starts_of_passage: dict[tuple[str, int], list[int]] = {}  # sentence starts, to place each candidate
    for c in found:
        key = (c.passage.source, c.passage.start)
        first_of_passage.setdefault(key, c.span.start)
        if key not in starts_of_passage:
            starts_of_passage[key] = [s.start for s in sentence_spans(c.passage.text, c.passage.start)]
    for i, c in enumerate(found):
        c.vector = own[i]
        sentence_terms = content_terms(c.span.text)
        haystack = normalise(c.span.text)
        names = sum(grounded(e, haystack) for e in entities) / len(entities) if entities else 0.0
        novelty = len(sentence_terms - terms) / len(sentence_terms) if sentence_terms else 0.0
        position = sum(1 for start in starts_of_passage[(c.passage.source, c.passage.start)] if start < c.span.start)
        # The document's opening sentence (an encyclopedia lead, a news lede) tends to carry the gist.
        lead = float(c.passage.start == 0 and first_of_passage[(c.passage.source, c.passage.start)] == c.span.start)
        c.features = np.array([
            cosines[i], cosines[i] - cosines.max(), context_cosines[i], coverage[i], coverage[i] - coverage.max(),
            context_coverage[i], names, novelty, 1.0 / c.rank, 1.0 / (1 + position),
            min(len(c.span.text.split()), 60) / 60, c.passage.dense_score or 0.0,
            (c.passage.keyword_score or 0.0) / keyword_best, lead, 1.0 / (1 + cosine_rank[i]),
            1.0 / (1 + coverage_rank[i]), float(kind is not None),
            float(kind is not None and bool(kind.sentence.search(c.span.text)))], dtype=np.float32)


@dataclass(frozen=True)
class QuestionKind:
    """What a question asks for (a reason, a date, an amount, a place…) and what a sentence holding it
    looks like. Signals for the learned model, which weighs them; they decide nothing alone."""

    name: str
    question: re.Pattern
    sentence: re.Pattern


@lru_cache(maxsize=1)
def question_kinds() -> tuple[QuestionKind, ...]:
    data = tomllib.loads(KINDS_FILE.read_text(encoding="utf-8"))
    return tuple(QuestionKind(k["name"], re.compile(k["question"], re.I),
                              re.compile(k["sentence"], 0 if k.get("case_sensitive") else re.I))
                 for k in data["kind"])


def question_kind(question: str) -> QuestionKind | None:
    """The first kind in rag/data/questions.toml whose question pattern matches."""
    return next((kind for kind in question_kinds() if kind.question.search(question)), None)


def _idf(terms: frozenset[str], sentences: list[frozenset[str]]) -> dict[str, float]:
    """IDF of each question word among the candidate sentences: a word every sentence has tells little."""
    return {t: math.log(1 + len(sentences) / (1 + sum(t in s for s in sentences))) for t in terms}


def _coverage(weights: dict[str, float], sentence_terms: frozenset[str], total: float | None = None) -> float:
    total = sum(weights.values()) if total is None else total
    return sum(v for t, v in weights.items() if t in sentence_terms) / total if total else 0.0


def question_features(question: str, found: list[Candidate], passages: Sequence[Passage]) -> np.ndarray:
    """What the whole retrieval says about answerability: the best sentence scores and the names grounded."""
    logits = sorted((c.logit for c in found), reverse=True) or [-10.0]
    entities = question_entities(question)
    grounded_share = 1.0 - len(missing_entities(question, passages)) / len(entities) if entities else 1.0
    return np.array([logits[0], float(np.mean(logits[:3])), max((c.features[0] for c in found), default=0.0),
                     max((c.features[3] for c in found), default=0.0), grounded_share], dtype=np.float32)


# ---- the fitted models
@dataclass(frozen=True)
class Logistic:
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((np.atleast_2d(x) - self.mean) / self.scale) @ self.weights + self.bias

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        return {"features": list(names), "weights": [round(float(w), 6) for w in self.weights],
                "bias": round(float(self.bias), 6), "mean": [round(float(v), 6) for v in self.mean],
                "scale": [round(float(v), 6) for v in self.scale]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], names: Sequence[str]) -> "Logistic":
        if list(data["features"]) != list(names):
            raise ValueError(f"weights were fitted for features {data['features']}, the code computes {list(names)}")
        return cls(np.array(data["weights"], dtype=np.float32), float(data["bias"]),
                   np.array(data["mean"], dtype=np.float32), np.array(data["scale"], dtype=np.float32))


@dataclass(frozen=True)
class AnswererModel:
    sentence: Logistic
    answerable: Logistic
    answer_threshold: float  # P(answerable) below this: refuse
    include_threshold: float  # further sentences join the best one when P(answers) reaches this

    def score(self, question: str, found: list[Candidate], passages: Sequence[Passage]) -> float:
        """Set every candidate's probability; return P(the passages answer the question)."""
        if found:
            logits = self.sentence.logits(np.stack([c.features for c in found]))
            for c, logit in zip(found, logits):
                c.logit, c.probability = float(logit), _sigmoid(float(logit))
        return _sigmoid(float(self.answerable.logits(question_features(question, found, passages))[0]))

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> "AnswererModel":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(Logistic.from_dict(data["sentence"], SENTENCE_FEATURES),
                   Logistic.from_dict(data["answerable"], QUESTION_FEATURES),
                   float(data["answer_threshold"]), float(data["include_threshold"]))


@lru_cache(maxsize=1)
def default_model() -> AnswererModel:
    return AnswererModel.load()


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))
