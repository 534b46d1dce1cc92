"""Small text utilities shared by cleaning, duplicate detection and answering."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_WORD = re.compile(r"[\w][\w'’-]*", re.UNICODE)
# A sentence ends at . ! ? (optionally closed by a quote or bracket) followed by space and
# a capital, a digit or an opening quote. Written by hand because punkt (the tokenizer
# LlamaIndex ships) splits "U.S. reporters" and "Wed. that" in news text.
_SENTENCE_END = re.compile(r"""[.!?]["”’')\]]*(?=\s+["“‘'(\[]?[A-Z0-9\u0400-\u04FF])""")
_ABBREVIATION = re.compile(r"(?:\b(?:[A-Z]\.)+[A-Z]?|\b(?:Mr|Mrs|Ms|Dr|St|Sen|Rep|Gen|Gov|Jr|Sr|Prof|No|vs|etc|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Inc|Ltd|Co|Corp))$")

_ATTRIBUTION = re.compile(r"\s+(?:[A-Z][\w.'’-]*\s+){1,3}(?:said|says|told|added|asked|wrote|noted|stressed)\b")

STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have he her his how i if in into
    is it its me more most my no not of on or our she should so than that the their them then there these they this
    those to too us was we were what when where which while who whom why will with would you your about after also
    any before did does during just other over said says say some such up very""".split()
)


def is_valid_text(value: str) -> bool:
    """Whether every character can be written as UTF-8 (no lone surrogate, no undecodable byte)."""
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def require_text(value: str, what: str) -> str:
    """The value when it is text a tokenizer, Chroma and the file system can take; InputRejected
    otherwise. Every surface passes user text through this one check: a lone UTF-16 surrogate (valid
    JSON: "\\udfff") or a byte that is not UTF-8 (Python decodes argv and file names with
    surrogateescape) would otherwise fail deep inside a library."""
    from rag.errors import InputRejected

    if not isinstance(value, str):
        raise InputRejected(f"{what} must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputRejected(f"{what} is not valid Unicode text (a lone surrogate or an undecodable byte at "
                            f"character {exc.start + 1})") from None
    bad = next((i for i, ch in enumerate(value) if ch in "\ufffe\uffff"), None)
    if bad is not None:  # noncharacters: what the MCP server puts where a lone surrogate was sent
        raise InputRejected(f"{what} is not valid Unicode text (a lone surrogate or a noncharacter at "
                            f"character {bad + 1})")
    return value


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


_UNIFY = str.maketrans({**dict.fromkeys("‘’‚‛ʼ′", "'"), **dict.fromkeys("“”„‟″", '"'),
                        **dict.fromkeys("‐‑‒–—―−", "-")})


def normalise(text: str) -> str:
    """NFKC, lower case, curly quotes and dashes unified, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", text.translate(_UNIFY)).strip()


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


@lru_cache(maxsize=65536)  # corpus sentences come back question after question
def content_terms(text: str) -> frozenset[str]:
    """Lower-cased words minus stop words, crudely stemmed so 'sanctioned' meets 'sanctions'."""
    return frozenset(stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer (Snowball), already a dependency of bm25s

    return Stemmer.Stemmer("english")


def stem(word: str) -> str:
    """Snowball stem, so 'cancelled', 'canceled' and 'cancellation' meet as 'cancel'."""
    return _stemmer().stemWord(word.replace("’", "'").removesuffix("'s"))


@lru_cache(maxsize=65536)
def shingles(text: str, n: int = 3) -> frozenset[str]:
    tokens = words(text)
    return frozenset(" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))) if tokens else frozenset()


def containment(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def sentence_spans(text: str, offset: int = 0) -> list[Span]:
    """Sentences of `text` with offsets (plus `offset`) such that text[start:end] == sentence."""
    spans: list[Span] = []
    for line in re.finditer(r"[^\n]+", text):
        start = line.start()
        for end_match in _SENTENCE_END.finditer(line.group()):
            end = line.start() + end_match.end()
            stop = line.start() + end_match.start()
            if text[stop] == "." and _ABBREVIATION.search(text[start:stop]):
                continue
            if end_match.group()[-1] in "\"”'’" and _ATTRIBUTION.match(text, end):
                continue
            spans.extend(_span(text, start, end, offset))
            start = end
        spans.extend(_span(text, start, line.end(), offset))
    return spans


def _span(text: str, start: int, end: int, offset: int) -> list[Span]:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return []
    lead = len(piece) - len(piece.lstrip())
    s = start + lead
    return [Span(s + offset, s + len(stripped) + offset, stripped)]


def is_heading(line: str) -> bool:
    """A short line that does not end like a sentence: a title or section heading."""
    line = line.strip().lstrip("#").strip()
    return 0 < len(line.split()) <= 20 and not re.search(r"[.!?:;\"”]$", line)
