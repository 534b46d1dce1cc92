"""15. Resource limits of the API: request size (413), question length and k (422), request time (504);
and the cap on answer tokens (tests/reliability/test_llm_faults.py::test_the_answer_length_is_capped)."""

from __future__ import annotations

import time

import httpx
import pytest


@pytest.fixture(scope="module")
def server(seeded, tmp_path_factory, llm_server):
    from conftest import RagServer

    started = RagServer(seeded.settings.data_dir, tmp_path_factory.mktemp("limits") / "serve.log",
                        RAG_REQUEST_TIMEOUT="1.5", OPENAI_API_KEY="sk-test-not-real",
                        OPENAI_BASE_URL=llm_server.base_url, OPENAI_MODEL="hang", RAG_LLM_TIMEOUT="4")
    yield started
    started.stop()


@pytest.mark.parametrize("body, status, error", [
    ({"question": "x" * 70_000}, 413, "request body is"),
    ({"question": "x" * 5_000}, 422, "the limit is 2,000"),
    ({"question": "sanctions", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"question": "sanctions", "k": 1_000_000}, 422, "k: Input should be less than or equal to 50"),
    ({"question": "sanctions", "history": ["q"] * 500}, 422, "history: List should have at most 20 items"),
])
def test_oversized_requests_are_refused(server, body, status, error):
    response = httpx.post(f"{server.url}/ask", json={**body, "mode": "extractive"}, timeout=30)
    assert response.status_code == status and error in response.json()["error"]


def test_a_request_over_the_time_limit_gets_504(server):
    started = time.monotonic()
    response = httpx.post(f"{server.url}/ask", json={"question": "Why was the summit cancelled?", "mode": "llm"},
                          timeout=30)
    assert response.status_code == 504 and "longer than 1.5 s" in response.json()["error"]
    assert time.monotonic() - started < 5
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200  # and the server carries on
