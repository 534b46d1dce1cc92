"""Finding text in articles that addresses a language model ("ignore previous instructions…").

Written by hand: the well-kept detectors (LLM Guard, Rebuff, NeMo Guardrails) need a classifier model
download or an LLM call, and neither is possible offline. Three checks, each on the sentence and on its
folded form (confusable letters to ASCII, zero-width characters removed, s p a c e d letters joined):
instruction patterns, patterns of a sentence addressed to an AI (several languages), and, at ingest,
a logistic classifier over MiniLM sentence vectors fitted by `python -m rag.ingestion.injection_fit` (weights
and operating point in `rag/data/injection_model.json`). Patterns live in `rag/data/injection.toml`.

The result is used twice (see `rag.answer`): the offline answerer never quotes these sentences, and an
LLM reply that repeats what they plant (a code, a quoted phrase, a link) is refused. The sentences stay
in the index: an article that contains them can be cited as data.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import regex  # (a dependency of tiktoken) Unicode properties: \p{Cf} without a table of every code point

from rag.text import sentence_spans

_RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "injection.toml"
# What an instruction plants for the model to repeat: codes (CANARY-4821, X9Y2Z), quoted phrases, links.
_CODE = re.compile(r"\b(?=[A-Z0-9_-]*\d)(?=[A-Z0-9_-]*[A-Z])[A-Z0-9][A-Z0-9_-]{3,}\b|\b[A-Z]{2,}[-_][A-Z0-9-]{2,}\b")
_QUOTED = re.compile(r"[\"“']([^\"”']{4,80})[\"”']")
_LINK = re.compile(r"\b(?:https?|javascript|data):[^\s)\]]+", re.I)
SPANS_KEY, TERMS_KEY = "instruction_spans", "instruction_terms"  # chunk metadata (JSON strings)
# Chunk metadata: which rules the chunk's document was scanned with at ingest (`rules_id()`). A passage
# scanned with today's rules is not scanned again at question time; one without (an older index) is.
SCANNED_KEY = "instructions_scanned"
SCAN_VERSION = 1  # bump when `scan` would find something else in the same text under the same rules


@dataclass
class Findings:
    spans: list[tuple[int, int]] = field(default_factory=list)  # instruction-like sentences (offsets)
    terms: list[str] = field(default_factory=list)  # what they plant for a model to repeat

    def __bool__(self) -> bool:
        return bool(self.spans)


@dataclass(frozen=True)
class _Rules:
    patterns: tuple[re.Pattern[str], ...]
    base64: re.Pattern[str]
    follow_on: int


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    raw = tomllib.loads(_RULES_FILE.read_text(encoding="utf-8"))
    addressed = [p.replace("{AI}", raw["ai_nouns"]) for p in raw["addressed_patterns"]]
    return _Rules(patterns=tuple(re.compile(p, re.I | re.S) for p in [*raw["instruction_patterns"], *addressed]),
                  base64=re.compile(rf"[A-Za-z0-9+/]{{{int(raw['base64_min_chars'])},}}={{0,2}}"),
                  follow_on=int(raw["follow_on_sentences"]))


@lru_cache(maxsize=1)
def rules_id() -> str:
    """The patterns' file and the scan's version, hashed: a chunk scanned under another is scanned again."""
    import hashlib

    return hashlib.sha256(_RULES_FILE.read_bytes() + f"|scan-{SCAN_VERSION}".encode()).hexdigest()[:16]


Classifier = Callable[[Sequence[str]], Sequence[bool]]  # sentences -> is each an instruction by meaning
MODEL_FILE = Path(__file__).resolve().parent.parent / "data" / "injection_model.json"

_SPACED = re.compile(r"(?<![^\W_])((?:[^\W_] ){2,}[^\W_])(?![^\W_])")
# With words set apart by double spaces ("I f  y o u"), two spaced letters are a word too.
_SPACED_WORDS = re.compile(r"(?<![^\W_])((?:[^\W_] )+[^\W_])(?![^\W_])")


# Cyrillic and Greek letters drawn like Latin ones, mapped by look (Unicode's confusables.txt skeletons);
# anyascii, used for the rest, transliterates by sound (Cyrillic с is "s" there, but it looks like c).
_LOOKALIKE = dict(zip("аеорсухіјѕԁһԛԝАВЕКМНОРСТХІЈЅοαρνικτυΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
                      "aeopcyxijsdhqwABEKMHOPCTXIJSoapvikTuABEZHIKMNOPTYX"))
_LOOKALIKE_TABLE = str.maketrans(_LOOKALIKE)
_FORMAT = regex.compile(r"\p{Cf}")  # zero-width spaces and joiners, bidi controls, soft hyphens
_LETTER = regex.compile(r"\p{L}")  # what str.isalpha() counts as a letter
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def fold(text: str) -> str:
    """The sentence as a pattern should see it: NFKC, zero-width and other format characters removed,
    letters that only look Latin made Latin ("Ignоre" with a Cyrillic о), s p a c e d letters joined."""
    # An ASCII sentence (most of an English corpus) is its own NFKC form and holds no format character or
    # look-alike: only the spacing step applies. Every sentence of every article is folded at ingest;
    # this path, and pattern-based counting for the rest, made folding real sentences 3.7x faster.
    if not text.isascii():
        text = _FORMAT.sub("", unicodedata.normalize("NFKC", text))
        if len(_ASCII_LETTER.findall(text)) > len(_LETTER.findall(text)) / 2:  # Latin script: look-alikes are attacks
            text = text.translate(_LOOKALIKE_TABLE)
        text = " ".join(_fold_word(w) for w in text.split(" "))
    text = (_SPACED_WORDS if "  " in text else _SPACED).sub(lambda m: m.group(1).replace(" ", ""), text)
    return " ".join(text.split())


def _fold_word(word: str) -> str:
    # Only a word that mixes Latin letters with letters of another script is a homoglyph attack ("Ignоre");
    # a Russian word stays itself so the patterns written in Russian still match it, "für" stays "für".
    if word.isascii() or not any(ch.isascii() and ch.isalpha() for ch in word):
        return word
    from anyascii import anyascii

    return "".join(ch if ch.isascii() or not ch.isalpha() or unicodedata.name(ch, "").startswith("LATIN")
                   else _LOOKALIKE.get(ch) or anyascii(ch) for ch in word)


def instruction_classifier(embedder) -> Classifier:
    """Whether each sentence reads as an instruction to a machine, by its MiniLM vector (the bundled
    local model only: the weights were fitted for it)."""
    import numpy as np

    fitted = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    weights, bias, threshold = np.asarray(fitted["weights"], dtype=np.float32), fitted["bias"], fitted["threshold"]

    def classify(texts: Sequence[str]) -> list[bool]:
        if not texts:
            return []
        vectors = np.asarray(embedder.get_text_embedding_batch([fold(t) for t in texts]), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
        return (vectors @ weights + bias > threshold).tolist()

    return classify


def is_instruction(sentence: str, rules: "_Rules | None" = None) -> bool:
    """Whether a sentence (or its folded form, or base64 inside it) matches an instruction pattern."""
    rules = rules or _rules()
    # dict.fromkeys: most sentences fold to themselves, and each distinct text is matched once.
    variants = dict.fromkeys((sentence, fold(sentence), *_decoded_base64(sentence, rules)))
    return any(p.search(t) for p in rules.patterns for t in variants)


def scan(text: str, offset: int = 0, classifier: Classifier | None = None) -> Findings:
    """Instruction-like sentences of `text` (offsets plus `offset`) and the terms they plant. With
    `classifier`, sentences that read as instructions by meaning count too."""
    rules = _rules()
    sentences = sentence_spans(text, offset)
    findings = Findings()
    flagged: set[int] = set()
    near = list(classifier([s.text for s in sentences])) if classifier is not None else [False] * len(sentences)
    for i, sentence in enumerate(sentences):
        decoded = _decoded_base64(sentence.text, rules)
        if not (near[i] or is_instruction(sentence.text, rules)):
            continue
        for j in range(i, min(i + 1 + rules.follow_on, len(sentences))):
            if j == i or _planted(sentences[j].text):
                flagged.add(j)
                findings.terms += _planted(sentences[j].text)
        findings.terms += [t for d in decoded for t in _planted(d)]
    findings.spans = [(sentences[i].start, sentences[i].end) for i in sorted(flagged)]
    findings.terms = sorted(set(findings.terms))
    return findings


def _decoded_base64(text: str, rules: _Rules) -> list[str]:
    decoded = []
    for blob in rules.base64.findall(text):
        try:
            plain = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if plain.isprintable():
            decoded.append(plain)
    return decoded


def _planted(text: str) -> list[str]:
    return [*_CODE.findall(text), *(q.strip() for q in _QUOTED.findall(text)), *_LINK.findall(text)]


def chunk_metadata(findings: Findings, start: int, end: int) -> dict[str, str]:
    """What a chunk's metadata records: that it was scanned, and with which rules; when its document has
    findings, the instruction spans inside the chunk and the document's planted terms."""
    if not findings:
        return {SCANNED_KEY: rules_id()}
    inside = [[s, e] for s, e in findings.spans if s < end and e > start]
    return {SCANNED_KEY: rules_id(), SPANS_KEY: json.dumps(inside), TERMS_KEY: json.dumps(findings.terms)}


@lru_cache(maxsize=4096)
def passage_findings(text: str, start: int, recorded_spans: str = "[]", recorded_terms: str = "[]",
                     scanned_with: str | None = None) -> Findings:
    """Findings for a retrieved passage: those recorded at ingest (chunk metadata, JSON), plus a scan of
    its own text unless ingest scanned it with these rules (an older index, or rules changed since)."""
    if scanned_with == rules_id():
        return Findings(spans=[tuple(s) for s in json.loads(recorded_spans)], terms=json.loads(recorded_terms))
    own = scan(text, start)
    spans = [tuple(s) for s in json.loads(recorded_spans)]
    return Findings(spans=sorted(set(own.spans) | set(spans)),
                    terms=sorted(set(own.terms) | set(json.loads(recorded_terms))))


def overlaps(findings: Findings, start: int, end: int) -> bool:
    return any(s < end and e > start for s, e in findings.spans)


def repeats_planted(reply: str, findings: list[Findings]) -> str | None:
    """The first planted term a model's reply repeats (case-insensitive), if any."""
    lowered = reply.lower()
    for found in findings:
        for term in found.terms:
            if term.lower() in lowered:
                return term
    return None
