"""The Streamlit chat, driven by Streamlit's own AppTest against a real index and the real model."""

import os
from pathlib import Path

import pytest
from conftest import ROOT, free_port
from streamlit.testing.v1 import AppTest

from rag.serving.conversations import Conversations
from rag.serving.render import escape_markdown as md

HOSTILE = """Summit venue report

The Budapest summit venue was inspected by Hungarian officials on Monday and found ready for the leaders.
![tracker](http://127.0.0.1:9/leak?q=secret) <img src="http://127.0.0.1:9/img"> :red[ALERT] $x^2$ [click](javascript:alert(1))
Officials said the venue inspection had been completed before the cancellation was announced.
"""


def start(monkeypatch, data_dir, corpus_dir=None, **env):
    monkeypatch.setenv("RAG_DATA_DIR", str(data_dir))
    if corpus_dir:
        monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def ask(at, question):
    at.chat_input[0].set_value(question).run()
    assert not at.exception
    return at


def shown(elements):
    return "\n".join(e.value for e in elements)


def saved(at):
    """The messages of the chat the app shows, as saved in the data dir's SQLite."""
    return Conversations(Path(os.environ["RAG_DATA_DIR"])).messages(at.session_state["chat"])


@pytest.fixture
def app(seeded, monkeypatch):
    return start(monkeypatch, seeded.settings.data_dir)


@pytest.fixture
def fresh(tmp_path, corpus, monkeypatch):
    """A first start on an empty index over a writable two-article corpus."""
    return start(monkeypatch, tmp_path / "data", corpus)


def test_answer_links_each_marker_to_its_highlighted_source(app):
    ask(app, "Who is Liana Fix?")
    answer = app.markdown[0].value
    assert "Liana Fix" in answer and '[\\[1\\]](#sources-0 "Liana Fix' in answer  # the quote shows on hover
    anchors = [h.proto.anchor for h in app.subheader if h.proto.anchor.startswith("sources-")]
    entries = [e.label for e in app.expander if e.label.startswith("\\[")]  # one line per cited paragraph
    assert anchors == ["sources-0"] and entries[0].startswith("\\[1\\] ")
    assert "Liana Fix" in entries[0]  # the line quotes the cited sentence
    contexts = [m.value for m in app.markdown if ":orange-background[" in m.value]
    assert len(contexts) == len(entries) and "Fix" in contexts[0]
    assert md("seeds/") in shown(app.caption)


def test_a_source_opens_its_whole_article_at_the_cited_paragraph(app):
    ask(app, "Who is Liana Fix?")
    next(b for b in app.button if b.label == "Read the whole article").click().run()
    assert not app.exception and "The article before this passage" in [e.label for e in app.expander]
    highlighted = [m for m in app.markdown if ":orange-background[**Liana Fix" in m.value]
    assert len(highlighted) == 2  # in the source entry, and where the article view opens


def test_near_duplicates_say_also_in(app):
    ask(app, "What did Rubio call Putin?")
    assert "also in " + md("seeds/") in shown(app.caption)


def test_abstention_looks_different_from_an_answer(app):
    ask(app, "Who won the Super Bowl?")
    assert app.warning[0].value.startswith(md("The articles don't say"))
    assert not [e for e in app.expander if e.label.startswith("\\[")]


def test_follow_up_shows_the_rewritten_query(app):
    ask(app, "Which Russian oil companies were hit by the new US sanctions?")
    ask(app, "How did Moscow react to that?")
    searched = [c.value for c in app.caption if c.value.startswith("Searched for:")]
    assert searched and md("oil companies hit new") in searched[-1]
    assert len([m for m in saved(app) if m["role"] == "user"]) == 2
    assert not app.help and "None" not in shown(app.markdown)  # re-rendered history shows only the chat


def test_new_chat_starts_empty_and_the_old_one_stays_saved(app):
    ask(app, "Which Russian oil companies were hit by the new US sanctions?")
    first = app.session_state["chat"]
    next(b for b in app.sidebar.button if b.label == "New chat").click().run()
    assert app.session_state["chat"] is None and not app.chat_message
    old = next(b for b in app.sidebar.button if b.key == f"chat-{first}")
    old.click().run()
    assert app.session_state["chat"] == first and "Rosneft" in app.markdown[0].value


def test_an_empty_chat_suggests_questions_from_the_articles_and_asks_one(app, seeded):
    suggestions = [b for b in app.main.button if b.key and b.key.startswith("suggested-")]
    titles = {d["title"] for d in seeded.sources()}
    assert suggestions[0].label == md("Summarize the articles.", inline=True)
    assert len(suggestions) == 3 and all(any(md(t, inline=True) in b.label for t in titles) for b in suggestions[1:])
    suggestions[1].click().run()
    messages = saved(app)
    assert md(messages[0]["content"], inline=True) == suggestions[1].label and messages[1]["role"] == "assistant"
    assert not [b for b in app.main.button if b.key and b.key.startswith("suggested-")]


def test_a_reload_shows_the_same_chat_and_it_can_be_renamed_exported_and_deleted(app, monkeypatch):
    ask(app, "Which Russian oil companies were hit by the new US sanctions?")
    chat = app.session_state["chat"]
    reloaded = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)  # a new browser session
    reloaded.query_params["chat"] = str(chat)  # the address the first one had
    reloaded.run()
    assert reloaded.session_state["chat"] == chat and "Rosneft" in reloaded.markdown[0].value
    reloaded.sidebar.text_input[0].set_value("Oil sanctions")
    next(b for b in reloaded.sidebar.button if b.label == "Rename").click().run()
    assert any(b.label == md("Oil sanctions", inline=True) for b in reloaded.sidebar.button)
    [export] = reloaded.sidebar.get("download_button")
    assert export.proto.label == "Export as Markdown"
    next(b for b in reloaded.sidebar.button if b.label == "Delete this chat").click().run()
    assert "This cannot be undone" in shown(reloaded.sidebar.warning)  # asked first: nothing deleted yet
    assert any(c.id == chat for c in Conversations(Path(os.environ["RAG_DATA_DIR"])).list())
    next(b for b in reloaded.sidebar.button if b.label == "Delete").click().run()
    assert all(c.id != chat for c in Conversations(Path(os.environ["RAG_DATA_DIR"])).list())
    assert reloaded.session_state["chat"] is None


def test_questions_sent_while_answering_are_answered_in_order(app):
    """A question typed during an answer reruns the script; both are saved first, then answered in turn."""
    ask(app, "Which Russian oil companies were hit by the new US sanctions?")
    chats = Conversations(Path(os.environ["RAG_DATA_DIR"]))
    chats.append(app.session_state["chat"], {"role": "user", "content": "Who is Liana Fix?"})  # cut short
    ask(app, "Why was the Budapest summit cancelled?")
    messages = saved(app)
    questions = [i for i, m in enumerate(messages) if m["role"] == "user"]
    answered = {m["for"]: m for m in messages if m["role"] == "assistant"}
    assert sorted(answered) == questions  # every question answered, none twice
    assert "Fix" in answered[questions[1]]["answer"] and "Budapest" in answered[questions[2]]["question"]


def test_a_failed_answer_shows_its_error_in_place_and_keeps_the_question(app):
    ask(app, "x" * 2500)
    assert "Not answered" in shown(app.error) and md("limit is 2,000", inline=True) in shown(app.error)
    assert saved(app)[0] == {"role": "user", "content": "x" * 2500}
    ask(app, "Which Russian oil companies were hit by the new US sanctions?")  # the chat goes on
    assert "Rosneft" in saved(app)[-1]["answer"]


def test_settings_change_k_and_mode(app):
    app.slider[0].set_value(2).run()
    ask(app, "Which Russian oil companies were hit by the new US sanctions?")
    assert len({c["passage_id"] for c in saved(app)[-1]["citations"]}) <= 2  # k passages read
    app.slider[0].set_value(8).run()
    app.radio[0].set_value("llm").run()
    assert "LLM mode needs OPENAI_API_KEY" in shown(app.warning)
    ask(app, "Which Russian oil companies were hit by the new US sanctions?")
    assert md("LLM answer not used") in shown(app.info)  # and the extractive answer is still there
    assert "Rosneft" in saved(app)[-1]["answer"]


def test_a_link_with_a_question_asks_it_once(seeded, monkeypatch):
    monkeypatch.setenv("RAG_DATA_DIR", str(seeded.settings.data_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["q"] = "Which Russian oil companies were hit by the new US sanctions?"
    at.run()
    assert "Rosneft" in at.markdown[0].value
    at.run()  # a rerun does not ask again
    assert len([m for m in saved(at) if m["role"] == "user"]) == 1


def test_first_start_indexes_the_corpus_and_shows_its_status(fresh):
    assert "2 documents" in shown(fresh.sidebar.caption)
    ask(fresh, "Where are Rubio and Lavrov expected to attend a meeting later this month?")
    assert "Malaysia" in fresh.markdown[0].value


def test_upload_is_kept_under_its_name_counted_on_its_own_and_listed(fresh, corpus, tmp_path):
    fresh.sidebar.file_uploader[0].set_value(("../../outside.txt", HOSTILE.encode(), "text/plain")).run()
    assert not fresh.exception
    assert md("outside.txt added (1 chunk)", inline=True) in shown(fresh.sidebar.success)
    assert [p.name for p in (tmp_path / "data" / "uploads").iterdir()] == ["outside.txt"]
    assert not [p for p in corpus.iterdir() if "outside" in p.name] and not (corpus.parent.parent / "outside.txt").exists()
    assert "3 documents" in shown(fresh.sidebar.caption)  # the counts are current at once
    assert "Browse the 3 articles" in [e.label for e in fresh.sidebar.expander]
    assert md("outside.txt", inline=True) in shown(fresh.sidebar.caption)


def test_the_library_opens_an_article_and_removes_one_after_a_confirmation(fresh, tmp_path):
    fresh.sidebar.file_uploader[0].set_value(("venue.txt", HOSTILE.encode(), "text/plain")).run()
    upload = tmp_path / "data" / "uploads" / "venue.txt"
    next(b for b in fresh.sidebar.button if b.key == f"Read-{upload}").click().run()
    assert not fresh.exception and any("Budapest summit venue" in m.value for m in fresh.markdown)
    next(b for b in fresh.sidebar.button if b.key == f"Remove-{upload}").click().run()
    assert "the uploaded file is deleted" in shown(fresh.markdown) and upload.exists()  # asked, nothing done yet
    [confirm] = [b for b in fresh.button if b.label == "Remove" and not (b.key or "").startswith("Remove-")]
    confirm.click().run()
    assert not upload.exists() and "2 documents" in shown(fresh.sidebar.caption)
    assert md("venue.txt removed (1 chunk)", inline=True) in shown(fresh.sidebar.success)


@pytest.mark.parametrize("name, data, reason", [
    ("empty.txt", b"   \n", "file is empty"),
    ("blob.txt", b"\x00\x01\x02binary", "file looks binary"),
    ("huge.txt", b"word " * 300_000, "over the 1,000,000-byte limit"),
])
# (Other file types never reach the app: the uploader widget itself refuses them; the library's own
# check is tested in test_uploads.py.)
def test_rejected_uploads_say_why_and_write_nothing(tmp_path, corpus, monkeypatch, name, data, reason):
    at = start(monkeypatch, tmp_path / "data", corpus, RAG_MAX_FILE_BYTES="1000000")
    before = sorted(p.name for p in corpus.iterdir())
    at.sidebar.file_uploader[0].set_value((name, data, "text/plain")).run()
    assert not at.exception
    errors = shown(at.sidebar.error)
    assert md(f"{name} was not added: ", inline=True) in errors and md(reason, inline=True) in errors
    assert sorted(p.name for p in corpus.iterdir()) == before


def test_an_upload_name_is_shown_as_text_in_its_error(tmp_path, corpus, monkeypatch):
    at = start(monkeypatch, tmp_path / "data", corpus)
    at.sidebar.file_uploader[0].set_value(("![x](http://127.0.0.1:1/p.png).txt", b"   ", "text/plain")).run()
    [error] = at.sidebar.error
    assert "was not added" in error.value
    assert "![x](http" not in error.value  # the raw Markdown would load the image


def test_hostile_article_text_is_shown_as_text(tmp_path, corpus, monkeypatch):
    (corpus / "venue.txt").write_text(HOSTILE)
    at = start(monkeypatch, tmp_path / "data", corpus)
    ask(at, "Was the Budapest summit venue inspected by Hungarian officials?")
    rendered = shown(at.markdown)
    assert "venue" in rendered
    assert "![" not in rendered and "](http" not in rendered and "<img" not in rendered
    assert ":red[" not in rendered and "](javascript" not in rendered
    assert not at.html


def test_llm_timeout_falls_back_with_a_notice(seeded, llm_server, monkeypatch):
    at = start(monkeypatch, seeded.settings.data_dir, OPENAI_BASE_URL=llm_server.base_url, OPENAI_API_KEY="k",
               OPENAI_MODEL="hang", RAG_LLM_TIMEOUT="1", RAG_LLM_MAX_RETRIES="0")
    ask(at, "Which Russian oil companies were hit by the new US sanctions?")
    assert md("did not answer within 1 s") in shown(at.info)
    assert "Rosneft" in at.markdown[0].value


def test_llm_answers_are_cited_and_follow_ups_use_the_llm_rewrite(seeded, llm_server, monkeypatch):
    at = start(monkeypatch, seeded.settings.data_dir, OPENAI_BASE_URL=llm_server.base_url, OPENAI_API_KEY="k",
               OPENAI_MODEL="cite-ok")
    ask(at, "Why was the Budapest summit cancelled?")
    assert "(#sources-0 " in at.markdown[0].value and not at.info
    ask(at, "How did Moscow react to that?")
    searched = [c.value for c in at.caption if c.value.startswith("Searched for:")]
    assert "about\\: Why was the Budapest summit cancelled\\?" in searched[-1]


def test_unreachable_chroma_server_is_a_message(tmp_path, monkeypatch):
    at = start(monkeypatch, tmp_path / "data", tmp_path, CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(free_port()))
    assert "search unavailable" in shown(at.error)


def test_the_app_never_renders_html(app):
    assert "unsafe_allow_html" not in (ROOT / "app.py").read_text()
    assert not app.html


def test_conflicts_and_overviews_show_in_the_chat(seeded, monkeypatch):
    # The passage with the other figure ("two-hour") ranks 9th for this wording: ten passages bring it in.
    app = start(monkeypatch, seeded.settings.data_dir, RAG_K="10")
    ask(app, "How long did the Trump–Putin phone call last?")
    assert "The sources disagree on how many hours" in shown(app.warning)
    ask(app, "Summarize the articles.")
    assert "Overview: the central sentences of the articles" in shown(app.caption)
