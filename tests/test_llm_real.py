"""Opt-in (`make test-llm`, never in `make test`): LLM mode against a real model on loopback.

Qwen2.5-Coder-0.5B-Instruct (assembled once from its pinned PyPI parts, sha256 checked) served by
llama-cpp-python's OpenAI-compatible server, so the production path runs: the `openai` client, a base
URL, the real prompts, marker validation and the support check.
"""

import os

import pytest
from conftest import free_port
from test_answer import assert_citations_valid

pytestmark = [pytest.mark.llm,
              pytest.mark.skipif(not os.environ.get("RAG_TEST_LLM"), reason="opt-in: run `make test-llm`")]

QUESTION = "Why was the Budapest summit cancelled?"


@pytest.fixture(scope="module")
def real_llm(tmp_path_factory):
    from rag import Settings
    from rag.answer.local_model import ensure_model, model_named, running_server

    model = model_named("0.5b")
    path = ensure_model(model, Settings.from_env().models_dir)
    with running_server(path, port=free_port(), alias=model.alias, threads=2, context=2048,
                        log_file=tmp_path_factory.mktemp("llm") / "server.log") as base:
        yield base


@pytest.fixture
def local(seeded, real_llm):
    from rag import Pipeline

    return Pipeline(seeded.settings.replace(openai_base_url=real_llm, openai_model="0.5b", llm_timeout=300.0,
                                            llm_max_retries=0, llm_prompt_tokens=800))


def test_the_model_answers_with_checked_citations(local):
    answer = local.ask(QUESTION, mode="llm")
    assert answer.mode == "llm", answer.notice  # the model's own answer, not the fallback
    assert not answer.abstained and answer.citations and answer.support
    assert all(s["supported"] for s in answer.support if s["sentence"] in answer.answer)
    assert_citations_valid(local, answer)
    assert "budapest" in answer.answer.lower() or "summit" in answer.answer.lower()


def test_streamed_tokens_are_the_reply(local):
    tokens = []
    answer = local.ask(QUESTION, mode="llm", on_token=tokens.append)
    assert len(tokens) > 5 and answer.mode == "llm"


def test_a_pronoun_follow_up_is_rewritten_by_the_model_with_a_short_prompt(local):
    from rag.answer.llm import complete, prompt_tokens
    from rag.answer.chat import condense_messages

    history = [QUESTION]
    follow_up = "Who cancelled it?"
    messages = condense_messages(follow_up, history)
    assert prompt_tokens(messages) <= 200
    reply = complete(messages, local.settings)  # the model's own rewrite, not the deterministic fallback
    assert any(w in reply.lower() for w in ("budapest", "summit")), reply
    answer = local.ask(follow_up, history, mode="llm")
    assert answer.query != follow_up and any(w in answer.query.lower() for w in ("budapest", "summit"))


def test_an_unanswerable_question_is_not_answered_from_the_articles(local):
    answer = local.ask("Who won the 2022 football World Cup final?", mode="llm")
    assert answer.abstained or answer.mode == "extractive" or not answer.citations or all(
        "world cup" not in c.quote.lower() for c in answer.citations)
