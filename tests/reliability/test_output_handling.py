"""12. Markup and escapes in articles or model output are inert: in the chat (escaped Markdown, checked
with a CommonMark renderer; tests/test_browser.py checks a real browser too), in the CLI (no control
characters reach the terminal) and in the API (JSON data, never sniffed as HTML)."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest
from markdown_it import MarkdownIt

from rag import Pipeline
from rag.cli import main
from rag.serving.render import answer_markdown, escape_markdown, left_out_markdown, quotes_in_paragraph

HOSTILE_ARTICLE = ("Budapest venue report\n\nThe Budapest summit venue was inspected <script>alert(1)</script> "
                   "by officials on Monday. <img src=x onerror=alert(2)> Hotel bookings rose ![pixel]"
                   "(http://127.0.0.1:9/leak.png) before the [summit](javascript:alert(3)) was cancelled. "
                   "The terminal \x1b[2J\x1b]0;pwned\x07 escapes were removed by the organisers on Monday.\n")


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


def _inert(html: str) -> bool:
    """Only paragraphs, text, our own in-page citation links and highlight bold: no element an article or
    model made."""
    tags: list[tuple[str, list]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, attrs))

    Collect().feed(html)
    return all(tag in ("p", "strong", "ul", "li", "del") or (tag == "a" and [a for a, _ in attrs] in (["href"], ["href", "title"])
                              and attrs[0][1].startswith("#sources-")) for tag, attrs in tags)


@pytest.fixture
def hostile_pipeline(settings, corpus):
    (corpus / "venue.txt").write_text(HOSTILE_ARTICLE)
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    return pipeline


def test_article_markup_is_inert_in_the_chat(hostile_pipeline):
    answer = hostile_pipeline.ask("What happened at the Budapest summit venue on Monday?", mode="extractive")
    assert any(c.source.endswith("venue.txt") for c in answer.citations)
    assert not _inert(_html(HOSTILE_ARTICLE))  # unescaped, the article would render live elements
    assert _inert(_html(answer_markdown(answer.answer, {c.id: c.quote for c in answer.citations}, 0)))
    for c in answer.citations:
        shown = quotes_in_paragraph(hostile_pipeline.document_text(c.source), [(c.start, c.end, c.quote)])
        assert _inert(_html(shown.markdown() if shown else escape_markdown(c.quote)))


def test_model_markup_is_inert_in_the_chat(seeded, llm_server):
    llm = Pipeline(seeded.settings.replace(openai_api_key="sk-test-not-real", openai_base_url=llm_server.base_url,
                                           openai_model="hostile-markup"))
    answer = llm.ask("Why was the Budapest summit cancelled?", mode="llm")
    written = answer.answer + " ".join(s["sentence"] for s in answer.support)
    assert answer.mode == "llm" and "<script>" in written and "javascript:" in written  # the raw text is data...
    assert _inert(_html(answer_markdown(answer.answer, {c.id: c.quote for c in answer.citations}, 0)))  # ...shown inert
    assert _inert(_html(left_out_markdown(answer.support) or ""))


def test_no_control_character_reaches_the_terminal(hostile_pipeline, llm_server, capsys, monkeypatch):
    data = ["--data-dir", str(hostile_pipeline.settings.data_dir)]
    assert main([*data, "ask", "--mode", "extractive", "What was removed by the organisers on Monday?"]) == 0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_MODEL", "ansi")
    assert main([*data, "ask", "--mode", "llm", "Why was the Budapest summit cancelled?"]) == 0
    assert main([*data, "retrieve", "terminal escapes removed by the organisers"]) == 0
    out, err = capsys.readouterr()
    assert "pwned" in out  # the words are there...
    assert not any(ch in out + err for ch in "\x1b\x07\x08")  # ...the escapes are not


def test_api_responses_are_json_data(hostile_pipeline, rag_server):
    server = rag_server(hostile_pipeline.settings.data_dir)
    for path, body in [("/ask", {"question": "What happened at the Budapest summit venue on Monday?"}),
                       ("/retrieve", {"query": "Budapest summit venue inspected"}), ("/ask", {"question": ""})]:
        response = httpx.post(server.url + path, json=body, timeout=30)
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" in response.text or response.status_code == 422
