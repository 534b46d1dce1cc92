"""5. LLM endpoint faults (against the loopback stub, a FAKE of a paid API's failure modes): every call
ends within its time budget (`llm_timeout`, all retries and waits included), auth errors are never
retried, the user gets one clear notice and the extractive answer. Attempts are counted by the stub."""

from __future__ import annotations

import time

import pytest

QUESTION = "Why was the Budapest summit cancelled?"


def test_hang_times_out_and_falls_back_to_extractive(llm_pipeline, llm_server):
    pipeline = llm_pipeline("hang", llm_timeout=1.0, llm_max_retries=0)
    before = llm_server.attempts("hang")  # the app tests use this model too
    started = time.monotonic()
    answer = pipeline.ask(QUESTION, mode="llm")
    assert time.monotonic() - started < 8
    assert answer.mode == "extractive" and answer.citations
    assert "did not answer within 1 s" in answer.notice and "extractive" in answer.notice
    assert llm_server.attempts("hang") - before == 1


def test_429_then_success_is_retried(llm_pipeline, llm_server):
    answer = llm_pipeline("429-then-ok", llm_max_retries=2).ask(QUESTION, mode="llm")
    assert answer.mode == "llm" and answer.notice is None
    assert llm_server.attempts("429-then-ok") == 2


def test_401_is_not_retried_and_says_so(llm_pipeline, llm_server):
    answer = llm_pipeline("401", llm_max_retries=3).ask(QUESTION, mode="llm")
    assert llm_server.attempts("401") == 1
    assert answer.mode == "extractive" and "rejected the API key" in answer.notice
    assert "sk-test-not-real" not in answer.notice


@pytest.mark.parametrize("model, message", [("always-500", "HTTP 500"), ("bad-json", "could not read")])
def test_server_errors_fall_back_with_a_notice(llm_pipeline, llm_server, model, message):
    answer = llm_pipeline(model, llm_max_retries=1).ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and message in answer.notice
    assert llm_server.attempts(model) == (2 if model == "always-500" else 1)


def test_a_retry_after_beyond_the_budget_is_not_waited_for(llm_pipeline, llm_server):
    started = time.monotonic()
    answer = llm_pipeline("429-wait-30", llm_timeout=3.0, llm_max_retries=5).ask(QUESTION, mode="llm")
    assert time.monotonic() - started < 3
    assert llm_server.attempts("429-wait-30") == 1
    assert answer.mode == "extractive" and "rate limiting (429)" in answer.notice


@pytest.mark.parametrize("model", ["hang", "always-500"])
def test_every_retry_layer_together_stays_inside_the_budget(llm_pipeline, llm_server, model):
    before = llm_server.attempts(model)
    started = time.monotonic()
    answer = llm_pipeline(model, llm_timeout=2.0, llm_max_retries=10).ask(QUESTION, mode="llm")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0 + 1.5  # the budget, plus retrieval and the extractive answer
    assert answer.mode == "extractive" and answer.citations and answer.notice
    made = llm_server.attempts(model) - before
    assert made == 1 if model == "hang" else 2 <= made <= 4  # backoff 0.5 s, 1 s, 2 s… until the budget ends


def test_the_answer_length_is_capped(llm_pipeline, llm_server):
    llm_pipeline("cite-ok", llm_max_tokens=123).ask(QUESTION, mode="llm")
    assert llm_server.last("cite-ok")["max_tokens"] == 123
