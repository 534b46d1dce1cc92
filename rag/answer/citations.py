"""The `Answer` and `Citation` types (exactly the JSON `rag ask --json` prints) and marker handling."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from rag.retrieval.search import Passage
from rag.text import Span, content_terms, sentence_spans

ABSTENTION = "The articles don't say."
_BRACKET = re.compile(r"\[([^\[\]\n]{1,24})\]")
_MARKER_BODY = re.compile(r"^\s*(?:passage|source|ref|doc)?\s*\^?\s*\d+(?:\s*[,;]\s*\d+)*\s*$", re.IGNORECASE)


@dataclass
class Citation:
    id: int
    source: str
    title: str
    quote: str  # exactly the cleaned document text from start to end
    start: int
    end: int
    also_in: list[str] = field(default_factory=list)
    passage_id: str = ""


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    mode: str
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    query: str = ""  # what was searched for (the question rewritten with the chat's context)
    notice: str | None = None  # e.g. "LLM unavailable, showing the extractive answer"
    warnings: list[str] = field(default_factory=list)
    kind: str = "answer"  # "answer", "overview", "timeline" or "articles" (a request that is not a question)
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # {"about", "citations", "figures"}
    # LLM answers: every sentence of the reply with the citation ids it carries and whether the cited
    # passages support it (None: it cited nothing); unsupported ones are not in `answer`.
    support: list[dict[str, Any]] = field(default_factory=list)  # {"sentence", "citations", "supported", "probability", "recited"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_sentences(passage: Passage) -> list[Span]:
    """Sentences of a passage, with offsets into its document, that can stand as a cited claim:
    never one that reads as instructions to a model, or repeats what such instructions plant."""
    from rag.ingestion.injection import overlaps, repeats_planted
    from rag.text import is_heading

    findings = instructions_in(passage)
    return [s for s in whole_quotes(sentence_spans(passage.text, passage.start), passage)
            if len(s.text.split()) >= 5 and not is_heading(s.text) and not is_list_fragment(s.text)
            and not _LINKED.search(s.text) and not (findings and (overlaps(findings, s.start, s.end) or repeats_planted(s.text, [findings])))]


# A sentence carrying a link or an image (Markdown or a bare URL) is never quoted: a planted instruction
# often comes with one, and a quoted answer has no need of it.
_LINKED = re.compile(r"!\[[^\]]*\]\(|\]\(\s*(?:https?|javascript|data):|\b(?:https?://|www\.)\S", re.I)
_BULLET = re.compile(r"^\s*(?:[•·▪◦‣*–—-]|\d{1,2}[.)])\s+")


def is_list_fragment(sentence: str) -> bool:
    """A bullet item ("• Imposition of new sanctions on Russia.") or a list title ("Key takeaways:"): parts
    of a list, not sentences that can stand alone as an answer."""
    return bool(_BULLET.match(sentence)) or sentence.rstrip().endswith(":")


# A sentence opening with one of these leans on the one before it for who or what it is about.
_LEANING = re.compile(r"^\W*(he|she|it|they|this|these|those|that|his|her|its|their|him|them|but|however|"
                      r"such|there|then|also)\b", re.I)


def leans_on_previous(sentence: str) -> bool:
    """"He said…", "But this source…": the sentence needs the one before it to be understood."""
    return bool(_LEANING.match(sentence))


def whole_quotes(spans: list[Span], passage: Passage) -> list[Span]:
    """Sentences joined while a quotation is open, so an answer never cuts one ("...that the U.S." / "...")."""
    joined: list[Span] = []
    for span in spans:
        between = passage.text[joined[-1].end - passage.start:span.start - passage.start] if joined else "\n"
        if "\n" not in between and _open_quote(joined[-1].text):  # within one paragraph only
            last = joined[-1]
            joined[-1] = Span(last.start, span.end, passage.text[last.start - passage.start:span.end - passage.start])
        else:
            joined.append(span)
    return joined


def _open_quote(text: str) -> bool:
    return text.count("\u201c") > text.count("\u201d") or text.count('"') % 2 == 1


def instructions_in(passage: Passage):
    """The instruction-like text of a passage (`rag.ingestion.injection.Findings`)."""
    from rag.ingestion.injection import SCANNED_KEY, SPANS_KEY, TERMS_KEY, passage_findings

    meta = passage.metadata or {}
    return passage_findings(passage.text, passage.start, meta.get(SPANS_KEY, "[]"), meta.get(TERMS_KEY, "[]"),
                            meta.get(SCANNED_KEY))


def citation_for(passage: Passage, span: Span, citation_id: int) -> Citation:
    return Citation(id=citation_id, source=passage.source, title=passage.title, quote=span.text,
                    start=span.start, end=span.end, also_in=list(passage.also_in), passage_id=passage.id)


def best_supporting_span(claim: str, passage: Passage) -> Span:
    """The passage sentence that shares most content words with a claim (the passage itself if none)."""
    terms = content_terms(claim)
    spans = candidate_sentences(passage) or [Span(passage.start, passage.end, passage.text)]
    return max(spans, key=lambda s: (len(terms & content_terms(s.text)), -s.start))


def extract_markers(text: str, passage_count: int) -> tuple[list[str], list[list[int]], list[str]]:
    """Split an LLM answer into sentences and validate their [n] markers against 1..passage_count.

    Returns the sentences with markers taken out, the valid passage numbers each one cited (in
    order), and a warning for every marker removed and every sentence left uncited.
    """
    warnings: list[str] = []
    sentences: list[str] = []
    cited: list[list[int]] = []
    # "Claim. [1] Next claim." -> "Claim [1]. Next claim.": a marker after the full stop belongs to the claim before it.
    text = re.sub(r"([.!?])((?:\s*\[[^\[\]\n]{1,24}\])+)", r"\2\1", text)
    for span in sentence_spans(text):
        numbers: list[int] = []
        without = _BRACKET.sub(lambda m, found=numbers: _take_marker(m, found, passage_count, warnings), span.text)
        plain = re.sub(r"\s+([.!?,;:])", r"\1", without).strip()
        plain = re.sub(r"\s{2,}", " ", plain)
        if not plain:
            continue
        if not numbers and not _is_abstention(plain):
            warnings.append(f"sentence without a citation: {plain[:80]!r}")
        sentences.append(plain)
        cited.append(numbers)
    return sentences, cited, warnings


def _take_marker(match: re.Match, numbers: list[int], passage_count: int, warnings: list[str]) -> str:
    """Record the valid passage numbers of one bracket, warn about the rest; the bracket itself goes."""
    body = match.group(1)
    if not _MARKER_BODY.match(body):
        if re.search(r"\d", body):
            warnings.append(f"removed malformed citation marker [{body}]")
            return ""
        return match.group(0)  # ordinary bracketed text such as [sic]
    for n in map(int, re.findall(r"\d+", body)):
        if not 1 <= n <= passage_count:
            warnings.append(f"removed citation marker [{n}]: there are only {passage_count} passages")
        elif n not in numbers:
            numbers.append(n)
    return ""


def _is_abstention(sentence: str) -> bool:
    lowered = sentence.lower().replace("’", "'")
    return any(p in lowered for p in ("don't say", "do not say", "don't know", "do not know", "do not mention",
                                      "don't mention", "no information"))


def is_abstention(text: str) -> bool:
    return _is_abstention(text)
