"""Finding text in articles that addresses a language model ("ignore previous instructions…").

Written by hand: the well-kept detectors (LLM Guard, Rebuff, NeMo Guardrails) need a classifier model
download or an LLM call, and neither is possible offline. The patterns live in
`rag/data/injection.toml`; the result is used twice (see `rag.answer`): the offline answerer never
quotes these sentences, and an LLM reply that repeats what they plant (a code, a quoted phrase, a
link) is refused. The sentences stay in the index: an article that contains them can be cited as data.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rag.text import sentence_spans

_RULES_FILE = Path(__file__).resolve().parent / "data" / "injection.toml"
# What an instruction plants for the model to repeat: codes (CANARY-4821, X9Y2Z), quoted phrases, links.
_CODE = re.compile(r"\b(?=[A-Z0-9_-]*\d)(?=[A-Z0-9_-]*[A-Z])[A-Z0-9][A-Z0-9_-]{3,}\b|\b[A-Z]{2,}[-_][A-Z0-9-]{2,}\b")
_QUOTED = re.compile(r"[\"“']([^\"”']{4,80})[\"”']")
_LINK = re.compile(r"\b(?:https?|javascript|data):[^\s)\]]+", re.I)
SPANS_KEY, TERMS_KEY = "instruction_spans", "instruction_terms"  # chunk metadata (JSON strings)


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
    return _Rules(patterns=tuple(re.compile(p, re.I | re.S) for p in raw["instruction_patterns"]),
                  base64=re.compile(rf"[A-Za-z0-9+/]{{{int(raw['base64_min_chars'])},}}={{0,2}}"),
                  follow_on=int(raw["follow_on_sentences"]))


def scan(text: str, offset: int = 0) -> Findings:
    """Instruction-like sentences of `text` (offsets plus `offset`) and the terms they plant."""
    rules = _rules()
    sentences = sentence_spans(text, offset)
    findings = Findings()
    flagged: set[int] = set()
    for i, sentence in enumerate(sentences):
        decoded = _decoded_base64(sentence.text, rules)
        if not any(p.search(t) for p in rules.patterns for t in (sentence.text, *decoded)):
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
    """What a chunk's metadata records: the instruction spans inside it, and the document's planted terms."""
    if not findings:
        return {}
    inside = [[s, e] for s, e in findings.spans if s < end and e > start]
    return {SPANS_KEY: json.dumps(inside), TERMS_KEY: json.dumps(findings.terms)}


@lru_cache(maxsize=4096)
def passage_findings(text: str, start: int, recorded_spans: str = "[]", recorded_terms: str = "[]") -> Findings:
    """Findings for a retrieved passage: those recorded at ingest (chunk metadata, JSON) plus a scan of
    its own text (for indexes written before this check existed)."""
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
