"""Saved conversations: real SQLite in a temp data dir; what a reload, a rename, a delete and an export do."""

from __future__ import annotations

import threading

import pytest

from rag.serving.conversations import Conversations, to_markdown
from rag.errors import ConversationsUnavailable, InputRejected

ANSWER = {"role": "assistant", "question": "Why was the Budapest summit cancelled?",
          "query": "Why was the Budapest summit cancelled?",
          "answer": "Washington cancelled it after a call with Moscow [1].", "abstained": False,
          "citations": [{"id": 1, "source": "seeds/004.txt", "title": "Trump and Putin", "also_in": [],
                         "quote": "The White House said ![x](http://evil/p.png) there were no plans."}],
          "documents": {"seeds/004.txt": {"publisher": "Reuters", "date": "2025-10-22"}}}


def test_a_chat_survives_a_new_store_object_and_is_named_by_its_first_question(tmp_path):
    chats = Conversations(tmp_path)
    chat = chats.create()
    chats.append(chat.id, {"role": "user", "content": "  Why was the Budapest\nsummit cancelled? "})
    chats.append(chat.id, ANSWER)
    reloaded = Conversations(tmp_path)  # what a page reload or a restart sees
    [saved] = reloaded.list()
    assert saved.title == "Why was the Budapest summit cancelled?" and saved.messages == 2
    assert reloaded.messages(chat.id)[1] == ANSWER


def test_list_is_most_recent_first_and_rename_and_delete_act_on_one_chat(tmp_path):
    chats = Conversations(tmp_path)
    first, second = chats.create("Sanctions"), chats.create("Summit")
    chats.append(first.id, {"role": "user", "content": "Which oil companies were sanctioned?"})
    assert [c.title for c in chats.list()] == ["Sanctions", "Summit"]  # a named chat keeps its name
    chats.rename(second.id, "Budapest")
    chats.delete(first.id)
    assert [(c.title, c.messages) for c in chats.list()] == [("Budapest", 0)]
    with pytest.raises(InputRejected, match=f"no saved conversation {first.id}"):
        chats.messages(first.id)


@pytest.mark.parametrize("call, error", [
    (lambda c, i: c.rename(i, "   "), "title cannot be empty"),
    (lambda c, i: c.rename(i + 99, "x"), "no saved conversation"),
    (lambda c, i: c.delete(i + 99), "no saved conversation"),
    (lambda c, i: c.append(i, {"content": "no role"}), "role of 'user' or 'assistant'"),
    (lambda c, i: c.append(i + 99, {"role": "user", "content": "x"}), "no saved conversation"),
])
def test_bad_input_is_refused_and_nothing_changes(tmp_path, call, error):
    chats = Conversations(tmp_path)
    chat = chats.create("Kept")
    chats.append(chat.id, {"role": "user", "content": "Kept question"})
    with pytest.raises(InputRejected, match=error):
        call(chats, chat.id)
    assert [(c.title, c.messages) for c in chats.list()] == [("Kept", 1)]


def test_a_damaged_file_gives_one_clear_error(tmp_path):
    (tmp_path / "conversations.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(ConversationsUnavailable, match="the articles and answers still work. Move .* aside"):
        Conversations(tmp_path).list()


def test_concurrent_appends_from_several_sessions_are_all_kept(tmp_path):
    chats = Conversations(tmp_path)
    chat = chats.create("Busy")
    threads = [threading.Thread(target=lambda n=n: chats.append(chat.id, {"role": "user", "content": f"q{n}"}))
               for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(m["content"] for m in chats.messages(chat.id)) == sorted(f"q{n}" for n in range(20))


def test_markdown_export_has_questions_answers_and_quoted_sources_and_nothing_live():
    from markdown_it import MarkdownIt

    exported = to_markdown("Budapest", [{"role": "user", "content": "Why was the Budapest summit cancelled?"},
                                        ANSWER])
    html = MarkdownIt("commonmark").render(exported)  # what a Markdown viewer shows
    assert html.startswith("<h1>Budapest</h1>")
    assert "<h2>Why was the Budapest summit cancelled?</h2>" in html
    assert "after a call with Moscow [1]." in html
    assert "Trump and Putin (seeds/004.txt, Reuters, 2025-10-22): “The White House said" in html
    assert "<img" not in html and "<a " not in html  # an article's image syntax stays text, never live
