"""Is each sentence of a generated answer supported by the passages it cites?

A valid [n] marker only says the passage was sent. This check reads the sentence beside the cited
passages (and the question) and gives P(supported) from a logistic model over a few signals: MiniLM
similarity to the closest passage sentences, how many of its content words and names the passages hold
(the question's words count as given: an answer restates its question), and whether a number it states
is missing from them. The weights are fitted by `python -m rag.answer.support_train` on ClapNQ's
human answers beside their gold passages, against the same sentences beside other passages (a swapped
citation), with a number changed, or from another question; `rag/data/support.json` holds them and the
held-out figures. A sentence is supported when P(supported) ≥ 0.5: the fit weighs both classes alike,
so that is the point where supported is the likelier of the two.

With `recite`, a sentence its own citation does not support (or that cites nothing) is checked against
each of the other passages the model was given, and cited to the one that supports it best, if one
does: small models often copy a sentence from one passage and put the marker of another. The check
itself (`recite=False`) is what the eval's planted sentences measure.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rag.answer.scoring import Logistic, grounded, question_entities
from rag.text import content_terms, normalise

SUPPORT_FILE = Path(__file__).resolve().parent.parent / "data" / "support.json"
SUPPORT_FEATURES = ("cosine", "pair_cosine", "coverage", "new_terms", "sentence_coverage", "numbers_missing",
                    "any_number_missing", "names_missing", "length")
THRESHOLD = 0.5
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


@dataclass
class SentenceSupport:
    """One sentence of an answer: what it cites and the verdict (None: it cites nothing)."""

    sentence: str
    citations: list[int]
    supported: bool | None
    probability: float | None = None
    recited: bool = False  # the model cited another passage, or none; the check found this one supports it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def numbers_in(text: str) -> set[str]:
    """The numbers a text states, written without thousands separators ("1,200" and "1200" meet)."""
    found = set()
    for match in _NUMBER.findall(text):
        plain = match.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", match) else match
        found.add(plain.rstrip(".").replace(",", "."))
    return found


def support_features(sentence: str, vector: np.ndarray, question: str, passage_text: str,
                     passage_sentences: Sequence[str], passage_vectors: np.ndarray) -> np.ndarray:
    """The signals for one sentence against the text of the passages it cites. Vectors are unit length."""
    cosines = passage_vectors @ vector if len(passage_sentences) else np.zeros(1, dtype=np.float32)
    order = np.argsort(-cosines)
    if len(passage_sentences) >= 2:
        pair = passage_vectors[order[0]] + passage_vectors[order[1]]
        pair_cosine = float(pair @ vector / (np.linalg.norm(pair) + 1e-9))
    else:
        pair_cosine = float(cosines.max())
    terms = content_terms(sentence)
    given = content_terms(question)
    held = content_terms(passage_text)
    coverage = len(terms & held) / len(terms) if terms else 1.0
    new_terms = len(terms - held - given) / len(terms) if terms else 0.0
    sentence_coverage = max((len(terms & content_terms(s)) / len(terms) for s in passage_sentences), default=0.0) \
        if terms else 1.0
    numbers = numbers_in(sentence)
    passage_numbers = numbers_in(passage_text) | numbers_in(question)
    missing_numbers = len(numbers - passage_numbers)
    haystack = normalise(passage_text + " " + question)
    names = [e for e in question_entities(sentence) if not _NUMBER.fullmatch(e)]
    names_missing = sum(not grounded(e, haystack) for e in names) / len(names) if names else 0.0
    return np.array([float(cosines.max()), pair_cosine, coverage, new_terms, sentence_coverage,
                     missing_numbers / len(numbers) if numbers else 0.0, float(missing_numbers > 0), names_missing,
                     min(len(sentence.split()), 60) / 60], dtype=np.float32)


@dataclass(frozen=True)
class SupportModel:
    logistic: Logistic
    threshold: float = THRESHOLD

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-self.logistic.logits(features)))

    @classmethod
    def load(cls, path: Path = SUPPORT_FILE) -> "SupportModel":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(Logistic.from_dict(data["model"], SUPPORT_FEATURES), float(data["threshold"]))


@lru_cache(maxsize=1)
def default_model() -> SupportModel:
    return SupportModel.load()


def check_support(question: str, sentences: Sequence[str], cited: Sequence[Sequence[int]], passages: Sequence[Any],
                  embed: Callable[[list[str]], list[Any]], vectors_of: Callable[[list[str]], list[Any]],
                  model: SupportModel | None = None, *, recite: bool = False) -> list[SentenceSupport]:
    """A verdict for every sentence. `cited[i]` are sentence i's passage numbers (1-based into
    `passages`); `embed` embeds the answer's sentences (one batch); `vectors_of` gives the passages'
    sentence vectors (stored at ingest). With `recite`, unsupported and uncited sentences are moved to
    the single passage that supports them best, when one does (`citations` then holds its number)."""
    from rag.answer.citations import candidate_sentences, is_abstention

    model = model or default_model()
    substantive = [i for i, s in enumerate(sentences) if not is_abstention(s)]
    checked = [i for i in substantive if cited[i]]
    results = [SentenceSupport(s, list(c), None) for s, c in zip(sentences, cited)]
    candidates = substantive if recite else checked
    if not candidates:
        return results
    own = dict(zip(candidates, _unit(np.asarray(embed([sentences[i] for i in candidates]), dtype=np.float32))))
    numbers_needed = range(1, len(passages) + 1) if recite else sorted({n for i in checked for n in cited[i]})
    spans = {n: [s.text for s in candidate_sentences(passages[n - 1])] or [passages[n - 1].text]
             for n in numbers_needed}
    texts = list(dict.fromkeys(t for group in spans.values() for t in group))
    table = dict(zip(texts, _unit(np.asarray(vectors_of(texts), dtype=np.float32))))

    def probabilities(pairs: list[tuple[int, Sequence[int]]]) -> np.ndarray:
        rows = []
        for i, numbers in pairs:
            group = [t for n in numbers for t in spans[n]]
            rows.append(support_features(sentences[i], own[i], question,
                                         "\n".join(passages[n - 1].text for n in numbers), group,
                                         np.stack([table[t] for t in group])))
        return model.probabilities(np.stack(rows)) if rows else np.zeros(0)

    for i, p in zip(checked, probabilities([(i, cited[i]) for i in checked])):
        results[i].probability = round(float(p), 4)
        results[i].supported = bool(p >= model.threshold)
    if recite:
        lacking = [i for i in substantive if not results[i].supported]
        pairs = [(i, [n]) for i in lacking for n in spans if n not in cited[i]]
        best: dict[int, tuple[float, int]] = {}
        for (i, [n]), p in zip(pairs, probabilities(pairs)):
            if p >= model.threshold and p > best.get(i, (0.0, 0))[0]:
                best[i] = (float(p), n)
        for i, (p, n) in best.items():
            results[i] = SentenceSupport(sentences[i], [n], True, round(p, 4), recited=True)
    return results


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9)
