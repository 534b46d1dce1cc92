"""9. Bad questions: a clear error (or a sane answer), and no LLM call for anything rejected."""

from __future__ import annotations

import pytest

from rag.errors import InputRejected

MODEL = "cite-ok"  # the stub's cited answer: any call it gets is counted


@pytest.mark.parametrize("question, k, error", [
    ("", None, "the question is empty"),
    (" \t\n ", None, "the question is empty"),
    ("x" * 1_000_000, None, "the question is 1,000,000 characters long; the limit is 2,000"),
    ("🚀🔥😀", None, "the question has no letters or digits to search for"),
    ("\x00\x07\x1b", None, "the question is empty"),
    ("sanctions", 0, "k must be between 1 and 50, got 0"),
    ("sanctions", 10**6, "k must be between 1 and 50, got 1000000"),
    (None, None, "the question must be text"),
])
def test_rejected_questions_never_reach_the_llm(llm_pipeline, llm_server, question, k, error):
    pipeline = llm_pipeline(MODEL)
    before = llm_server.attempts(MODEL)
    with pytest.raises(InputRejected) as caught:
        pipeline.ask(question, k=k, mode="llm")
    assert str(caught.value) == error
    with pytest.raises(InputRejected):
        pipeline.retrieve(question, k=k)
    assert llm_server.attempts(MODEL) == before


@pytest.mark.parametrize("question", [
    "لماذا ألغيت قمة بودابست؟",  # right-to-left (Arabic)
    "למה בוטלה הפסגה בבודפשט?",  # right-to-left (Hebrew)
    "Why was the\x1b[31m Budapest\x00 summit\u202e cancelled?",  # control and bidi-override characters
])
def test_odd_but_valid_questions_get_an_answer_or_an_abstention(seeded, question):
    answer = seeded.ask(question, mode="extractive")
    assert answer.answer and (answer.abstained or answer.citations)
    assert not any(ch in answer.query for ch in "\x1b\x00\u202e")  # what was searched for is clean
