"""Sources that disagree: two cited sentences from different documents giving different figures for the
same thing ("two-and-a-half hours" in one article, "two hours" in another).

A figure is a number (digits or words, "two-and-a-half" included) with what it measures: the unit or
noun after it ("hours", "senators", "%"), or the month of a date. Two figures are about the same thing
when they measure it in the same unit and the words around them are mostly the same ("two-hour phone
call with Russian President" / "two-and-a-half-hour-long phone call with the Russian President"): at
least half of the smaller set of content words within CONTEXT_WORDS of each figure. Written by hand:
no library here reads quantities out of news text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from rag.text import content_terms, stem

CONTEXT_WORDS = 8  # on each side of a figure: about a clause, the thing measured and what happened to it
SAME_CONTEXT = 0.5  # "mostly the same": more shared than not
_ONES = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
         "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
         "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
         "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "a": 1, "an": 1, "dozen": 12}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_NUMBER_WORD = "|".join(sorted((w for w in [*_ONES, *_SCALES] if w not in ("a", "an")), key=len, reverse=True))
# "two and a half", "two-and-a-half", "2.5", "1,200", "three million", "half an"
_NUMBER = (rf"(?:\d[\d,]*(?:\.\d+)?|(?:{_NUMBER_WORD})(?:[\s-]+(?:{_NUMBER_WORD}))*)"
           rf"(?:[\s-]+and[\s-]+a[\s-]+half)?")
_FIGURE = re.compile(rf"(?<![\w.])(?P<number>{_NUMBER}|half)(?:[\s-]*(?P<percent>%|percent|per cent)|"
                     rf"[\s-]+(?P<unit>[a-z]+))?", re.I)
_DATE = re.compile(rf"\b(?P<month>{'|'.join(_MONTHS)})\s+(?P<day>\d{{1,2}})\b", re.I)
_SKIP_UNITS = {"and", "or", "of", "the", "a", "an", "to", "in", "on", "at", "for", "by", "with", "from", "than"}


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str  # stemmed: "hour", "senat", "%", or "date:june"
    text: str  # as written
    context: frozenset[str] = frozenset()  # content words around it


@dataclass
class Conflict:
    about: str
    citations: list[int]
    figures: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"about": self.about, "citations": self.citations, "figures": self.figures}


def figures(sentence: str) -> list[Figure]:
    """The quantities and dates a sentence states, each with the content words around it."""
    found = [Figure(float(m.group("day")), f"date:{m.group('month').lower()}", m.group(0),
                    _context(sentence, m.start(), m.end())) for m in _DATE.finditer(sentence)]
    dated = {m.span("day") for m in _DATE.finditer(sentence)}
    for m in _FIGURE.finditer(sentence):
        if m.span("number") in dated or m.group("number").lower() in ("a", "an"):
            continue
        value = parse_number(m.group("number"))
        if value is None:
            continue
        if m.group("percent"):
            unit = "%"
        else:
            word = (m.group("unit") or "").lower()
            if not word or word in _SKIP_UNITS or word in _ONES or word in _SCALES:
                continue
            unit = stem(word)
        found.append(Figure(value, unit, m.group(0), _context(sentence, m.start(), m.end())))
    return found


def _context(sentence: str, start: int, end: int) -> frozenset[str]:
    before = sentence[:start].split()[-CONTEXT_WORDS:]
    after = sentence[end:].split()[:CONTEXT_WORDS]
    return frozenset(t for t in content_terms(" ".join(before + after)) if not re.fullmatch(r"[\d.,]+", t)
                     and t not in _ONES and t not in _SCALES)


def parse_number(text: str) -> float | None:
    """12, 1,200, 2.5, "two", "twenty five", "three million", "two-and-a-half", "half"."""
    words = re.split(r"[\s-]+", text.lower().replace(",", ""))
    half = 0.5 if words[-3:] == ["and", "a", "half"] else 0.0
    if half:
        words = words[:-3]
    if words == ["half"]:
        return 0.5
    total, current = 0.0, 0.0
    for word in words:
        if re.fullmatch(r"\d+(?:\.\d+)?", word):
            current += float(word)
        elif word in _ONES:
            current += _ONES[word]
        elif word in _SCALES:
            total += max(current, 1) * _SCALES[word]
            current = 0.0
        else:
            return None
    return total + current + half


def find_conflicts(cited: Sequence[tuple[int, str, str]]) -> list[Conflict]:
    """Pairs of cited sentences from different documents that give different figures for the same thing.
    `cited`: (citation id, source, sentence) per citation."""
    conflicts: list[Conflict] = []
    seen: set[tuple[str, frozenset[int]]] = set()
    for i, (id_a, source_a, text_a) in enumerate(cited):
        for id_b, source_b, text_b in cited[i + 1:]:
            if source_a == source_b:
                continue
            for fa in figures(text_a):
                for fb in figures(text_b):
                    key = (fa.unit, frozenset((id_a, id_b)))
                    if fa.unit == fb.unit and fa.value != fb.value and key not in seen and same_thing(fa, fb):
                        seen.add(key)
                        conflicts.append(Conflict(about=_describe(fa.unit, text_a, fa.text), citations=[id_a, id_b],
                                                  figures=[fa.text, fb.text]))
    return conflicts


def _describe(unit: str, sentence: str, figure_text: str) -> str:
    if unit.startswith("date:"):
        return f"the date in {unit[5:].title()}"
    if unit == "%":
        return "the percentage"
    word = re.split(r"[\s-]+", figure_text)[-1].lower()
    return f"how many {word if word.endswith('s') else word + 's'}"


def same_thing(a: Figure, b: Figure) -> bool:
    """Whether two figures in one unit measure the same thing: the words around them mostly agree."""
    if not a.context or not b.context:
        return False
    return len(a.context & b.context) / min(len(a.context), len(b.context)) >= SAME_CONTEXT
