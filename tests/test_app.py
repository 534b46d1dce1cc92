"""The minimal Streamlit chat, driven by Streamlit's own AppTest."""

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest


@pytest.fixture
def app(seeded, monkeypatch):
    monkeypatch.setenv("RAG_DATA_DIR", str(seeded.settings.data_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_asks_and_shows_cited_answer(app):
    app.chat_input[0].set_value("Why was the Budapest summit cancelled?").run()
    assert not app.exception
    answer = " ".join(t.value for t in app.text)
    assert "[1]" in answer and "Lavrov" in answer
    assert any(e.label.startswith("[1] ") for e in app.expander)


def test_abstention_is_shown_as_a_warning(app):
    app.chat_input[0].set_value("Who won the Super Bowl?").run()
    assert app.warning and app.warning[0].value.startswith("The articles don't say")


def test_a_link_with_a_question_asks_it_once(seeded, monkeypatch):
    monkeypatch.setenv("RAG_DATA_DIR", str(seeded.settings.data_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["q"] = "Which oil companies were sanctioned?"
    at.run()
    assert "Rosneft" in " ".join(t.value for t in at.text)
    at.run()  # a rerun does not ask again
    assert len([m for m in at.session_state["messages"] if m["role"] == "user"]) == 1
