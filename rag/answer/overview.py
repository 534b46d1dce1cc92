"""Requests that are not questions: "Summarize the articles", "Tell me about the sanctions", "Give me a
timeline of the summit plans", "What's in the corpus?".

- articles: the list of indexed articles, each cited by its title;
- overview of the corpus: each article's lede, its first sentence that stands alone (news is written
  as an inverted pyramid: the lede carries the gist, and lead sentences are the baseline summarisers
  find hard to beat);
- overview of a topic: the most central retrieved sentences (closest to the centroid of the sentences
  they are drawn from, as in centroid-based summarisation) and to the topic, one per article first;
- timeline: sentences about the topic that state a date, in date order.
The request forms live in rag/data/requests.toml.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rag.answer.citations import Citation, candidate_sentences, citation_for, leans_on_previous
from rag.answer.extractive import REDUNDANT_COSINE
from rag.retrieval.search import Passage
from rag.text import Span

REQUESTS_FILE = Path(__file__).parent.parent / "data" / "requests.toml"
OVERVIEW_SENTENCES = 5  # one short paragraph: about one sentence per article of a small corpus
TIMELINE_EVENTS = 6
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_DATED = re.compile(rf"\b(?P<month>{'|'.join(_MONTHS)})(?:\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?)?(?:,?\s+(?P<year>\d{{4}}))?\b"
                    r"|\b(?P<only_year>(?:19|20)\d{2})\b", re.I)


@dataclass(frozen=True)
class Request:
    kind: str  # "articles", "overview" or "timeline"
    topic: str  # empty: the whole corpus


@dataclass(frozen=True)
class Document:
    """What the overview needs of an indexed article."""

    source: str
    title: str
    text: str
    date: str | None
    duplicates: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def _rules() -> tuple[list[tuple[str, re.Pattern]], frozenset[str]]:
    data = tomllib.loads(REQUESTS_FILE.read_text(encoding="utf-8"))
    return [(r["kind"], re.compile(r["pattern"], re.I)) for r in data["request"]], frozenset(data["generic"].split())


def read_request(question: str) -> Request | None:
    """The request a question makes when it is not a question, else None."""
    rules, generic = _rules()
    for kind, pattern in rules:
        match = pattern.search(question)
        if match:
            topic = (match.groupdict().get("topic") or "").strip(" ?.!")
            words = re.findall(r"[\w'’-]+", topic.lower())
            return Request(kind, topic if any(w not in generic for w in words) else "")
    return None


def list_articles(documents: Sequence[Document]) -> tuple[str, list[Citation]]:
    """"The corpus holds N articles: Title [1]; …", each title cited where it stands in its article."""
    citations, parts = [], []
    for n, doc in enumerate(documents, start=1):
        start = max(doc.text.find(doc.title), 0)
        title = doc.text[start:start + len(doc.title)] or doc.text[:80]
        passage = Passage("", doc.text, doc.source, doc.title, 0, len(doc.text), 0.0)
        citations.append(citation_for(passage, Span(start, start + len(title), title), n))
        parts.append(f"“{title}”{f' ({doc.date})' if doc.date else ''} [{n}]")
    noun = "article" if len(documents) == 1 else "articles"
    return f"The corpus holds {len(documents)} {noun}: " + "; ".join(parts), citations


def overview(candidates: Sequence[tuple[Passage, Span]], vectors: np.ndarray, topic_vector: Any | None,
             limit: int = OVERVIEW_SENTENCES) -> list[tuple[Passage, Span]]:
    """The most central sentences, one per article before any article gets a second; shown in the order
    of the articles' first appearance. Centrality: cosine to the centroid of all candidates, plus the
    cosine to the topic when one is named."""
    if not candidates:
        return []
    unit = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9)
    centroid = unit.mean(axis=0)
    score = unit @ (centroid / (np.linalg.norm(centroid) + 1e-9))
    if topic_vector is not None:
        t = np.asarray(topic_vector, dtype=np.float32)
        score = score + unit @ (t / (np.linalg.norm(t) + 1e-9))
    order = [int(i) for i in np.argsort(-score)]
    chosen: list[int] = []
    for round_ in (0, 1):  # first one sentence per article, then the next best of any
        covered = {candidates[i][0].source for i in chosen}
        for i in order:
            if len(chosen) >= limit:
                break
            if i in chosen or (round_ == 0 and candidates[i][0].source in covered):
                continue
            if any(float(unit[i] @ unit[j]) > REDUNDANT_COSINE for j in chosen):  # a near-repeat
                continue
            chosen.append(i)
            covered.add(candidates[i][0].source)
    first = {}
    for i in chosen:
        first.setdefault(candidates[i][0].source, len(first))
    return [candidates[i] for i in sorted(chosen, key=lambda i: (first[candidates[i][0].source],
                                                                   candidates[i][1].start))]


def timeline(candidates: Sequence[tuple[Passage, Span]], relevance: np.ndarray, dates: dict[str, str | None],
             limit: int = TIMELINE_EVENTS) -> list[tuple[Passage, Span]]:
    """The most relevant sentences that state a date, in date order (a date without a year takes the
    article's year; without a day, the first of the month)."""
    dated = [(i, when) for i, (p, s) in enumerate(candidates)
             if (when := sentence_date(s.text, dates.get(p.source))) is not None]
    best = sorted(dated, key=lambda d: -relevance[d[0]])[:limit]
    return [candidates[i] for i, _ in sorted(best, key=lambda d: (d[1], candidates[d[0]][1].start))]


def sentence_date(sentence: str, article_date: str | None) -> date | None:
    match = _DATED.search(sentence)
    if not match:
        return None
    year = _year(article_date)
    if match.group("only_year"):
        return date(int(match.group("only_year")), 1, 1)
    month = _MONTHS.index(match.group("month").lower()) + 1
    day = int(match.group("day") or 1)
    try:
        return date(int(match.group("year") or year or 1900), month, day)
    except ValueError:
        return None


def _year(article_date: str | None) -> int | None:
    found = re.search(r"\b(19|20)\d{2}\b", article_date or "")
    return int(found.group(0)) if found else None


def ledes(documents: Sequence[Document], limit: int = OVERVIEW_SENTENCES) -> list[tuple[Passage, Span]]:
    """Each article's first sentence that stands alone, skipping an article that is a near-duplicate of one
    already taken; dated articles in date order first."""
    found: list[tuple[Passage, Span]] = []
    taken: set[str] = set()
    for doc in sorted(documents, key=lambda d: (d.date is None, d.date or "", d.source)):
        if taken & set(doc.duplicates) or len(found) >= limit:
            continue
        taken.add(doc.source)
        passage = Passage("", doc.text, doc.source, doc.title, 0, len(doc.text), 0.0, also_in=list(doc.duplicates))
        lede = next((s for s in candidate_sentences(passage) if not leans_on_previous(s.text)), None)
        if lede:
            found.append((passage, lede))
    return found


def passage_candidates(passages: Sequence[Passage]) -> list[tuple[Passage, Span]]:
    """The quotable sentences of retrieved passages that stand alone, each once."""
    from rag.answer.scoring import candidates

    return [(c.passage, c.span) for c in candidates(passages) if not leans_on_previous(c.span.text)]


def respond(request: Request, documents: Callable[[], list[Document]], passages: Sequence[Passage],
            embed: Callable[[list[str]], list[Any]], topic_vector: Any | None,
            dates: dict[str, str | None]) -> tuple[str, list[Citation]]:
    """The answer text (every sentence cited) and its citations for a request that is not a question."""
    if request.kind == "articles":
        return list_articles(documents())
    if request.kind == "overview" and not request.topic:
        chosen = ledes(documents())
        citations = [citation_for(p, s, n) for n, (p, s) in enumerate(chosen, start=1)]
        return " ".join(f"{s.text} [{n}]" for n, (_, s) in enumerate(chosen, start=1)), citations
    pool = passage_candidates(passages)
    if not pool:
        return "", []
    vectors = np.asarray(embed([s.text for _, s in pool]), dtype=np.float32)
    if request.kind == "timeline":
        if topic_vector is not None:
            t = np.asarray(topic_vector, dtype=np.float32)
            relevance = vectors @ t / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(t) + 1e-9)
        else:
            relevance = np.zeros(len(pool))
        chosen = timeline(pool, relevance, dates)
    else:
        chosen = overview(pool, vectors, topic_vector)
    citations = [citation_for(p, s, n) for n, (p, s) in enumerate(chosen, start=1)]
    return " ".join(f"{s.text} [{n}]" for n, (_, s) in enumerate(chosen, start=1)), citations
