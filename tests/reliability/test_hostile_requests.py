"""Issue 12's probe of `rag serve`, each case against a real server process on loopback: text that is
not valid Unicode, streams that must end, bodies without a length, odd Authorization headers, bodies
FastAPI cannot parse, and SIGTERM with streams open."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest

SURROGATE = "Why was the Budapest summit cancelled? \udfff"
NOT_UNICODE = "not valid Unicode text"


def _raw_json(body: dict) -> bytes:
    # httpx refuses to encode a lone surrogate; JSON itself allows the escape, so send it as a client could.
    return json.dumps(body).encode("ascii")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from conftest import SEEDS, RagServer

    from rag import Pipeline, Settings

    data = tmp_path_factory.mktemp("hostile")
    Pipeline(Settings(data_dir=data, corpus_dir=SEEDS)).ingest()
    server = RagServer(data, data / "serve.log", RAG_API_READ_TOKEN="read-tok", RAG_API_TOKEN="write-tok")
    yield server
    server.stop()


AUTH = {"Authorization": "Bearer read-tok", "Content-Type": "application/json"}


@pytest.mark.parametrize("path, body", [
    ("/retrieve", {"query": SURROGATE}),
    ("/ask", {"question": SURROGATE}),
    ("/ask", {"question": "Who is Witkoff?", "history": ["\ud800 earlier"]}),
    ("/retrieve", {"query": "sanctions", "filters": {"source": "\udfff.txt"}}),
])
def test_text_that_is_not_unicode_gets_a_4xx_naming_it(served, path, body):
    response = httpx.post(f"{served.url}{path}", content=_raw_json(body), headers=AUTH, timeout=30)
    assert response.status_code == 422 and NOT_UNICODE in response.json()["error"]


def test_a_stream_with_bad_text_ends_with_an_error_event_and_the_server_stays_up(served):
    # Before: the worker thread died on the tokenizer's TypeError, the stream never ended, and ~40 such
    # streams froze every endpoint.
    for _ in range(60):
        with httpx.stream("POST", f"{served.url}/ask/stream", content=_raw_json({"question": SURROGATE}),
                          headers=AUTH, timeout=10) as response:
            lines = list(response.iter_lines())
        assert "event: error" in lines and any(NOT_UNICODE in line for line in lines)
    assert httpx.get(f"{served.url}/healthz", timeout=5).json()["status"] == "ok"
    ok = httpx.post(f"{served.url}/retrieve", json={"query": "Rosneft"}, headers=AUTH, timeout=10)
    assert ok.status_code == 200


def test_a_chunked_body_over_the_limit_is_cut_off(served):
    sent = 0

    def body():  # no Content-Length: httpx sends a generator chunked
        nonlocal sent
        yield b'{"query": "'
        for _ in range(2_000):  # up to 200 MB if nobody stops reading
            sent += 100_000
            yield b"x" * 100_000
        yield b'"}'

    response = httpx.post(f"{served.url}/retrieve", content=body(), headers=AUTH, timeout=30)
    assert response.status_code == 413 and "error" in response.json()
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("header", [
    "read-tok",  # no scheme
    "Basic read-tok",
    "Bearer rëad-tok",  # not ASCII: was a 500
    "Bearer \u00ff\u00fe",
    "Bearer",
    "Bearer read-tok-and-more",
])
def test_any_authorization_header_but_the_right_bearer_gets_401(served, header):
    response = httpx.post(f"{served.url}/retrieve", json={"query": "x"},
                          headers={"Authorization": header.encode("utf-8")})
    assert response.status_code == 401 and "Bearer" in response.json()["error"]


@pytest.mark.parametrize("content, status", [
    (b'{"query": "caf\xe9"}', 400),  # Latin-1, not UTF-8
    (b"[" * 30_000 + b"]" * 30_000, 400),  # deeper than the JSON parser goes
    (b'{"query": ', 400),
])
def test_bodies_fastapi_cannot_parse_get_our_error_shape(served, content, status):
    response = httpx.post(f"{served.url}/retrieve", content=content, headers=AUTH)
    assert response.status_code in (status, 413) and set(response.json()) == {"error"}


def test_unknown_paths_and_methods_get_our_error_shape(served):
    assert set(httpx.get(f"{served.url}/nowhere").json()) == {"error"}
    assert set(httpx.get(f"{served.url}/retrieve", headers=AUTH).json()) == {"error"}


def test_passages_over_the_api_carry_no_server_paths(served, tmp_path_factory):
    passages = httpx.post(f"{served.url}/retrieve", json={"query": "Rosneft Lukoil"}, headers=AUTH).json()
    text = json.dumps(passages)
    assert passages and "path" not in passages[0]["metadata"] and "/tmp" not in text and "/work" not in text


def test_sigterm_stops_the_server_within_seconds_with_streams_open(tmp_path, seeded, llm_server, rag_server):
    # The stub model writes slowly ("slow" replies take seconds); the streams are open when SIGTERM comes.
    server = rag_server(seeded.settings.data_dir, OPENAI_BASE_URL=llm_server.base_url, OPENAI_API_KEY="k",
                        OPENAI_MODEL="hang", RAG_LLM_TIMEOUT="60")
    clients = [httpx.Client(timeout=60) for _ in range(3)]
    streams = [c.stream("POST", f"{server.url}/ask/stream", json={"question": "Why was the summit cancelled?"})
               for c in clients]
    for s in streams:
        s.__enter__()
    time.sleep(1)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=15)
    assert time.monotonic() - started < 10
    for s, c in zip(streams, clients):
        try:
            s.__exit__(None, None, None)
        except httpx.HTTPError:
            pass
        c.close()


def test_a_bug_in_the_answer_still_ends_the_stream(seeded, monkeypatch):
    # A fake failure (a bug of ours cannot be produced on purpose): pipeline.ask raises a non-RagError.
    from starlette.testclient import TestClient

    from rag.pipeline import Pipeline
    from rag.serving.server import create_app

    def broken(*args, **kwargs):
        raise TypeError("TextEncodeInput must be Union[…]")

    monkeypatch.setattr(Pipeline, "ask", broken)
    with TestClient(create_app(seeded.settings)) as client:
        with client.stream("POST", "/ask/stream", json={"question": "Why?"}) as response:
            lines = list(response.iter_lines())
    assert lines[0] == "event: error" and "internal error (TypeError)" in lines[1]


def test_streams_beyond_the_limit_get_an_error_at_once(seeded, monkeypatch):
    # A fake slow answer (pipeline.ask waits on an event) holds the only stream slot.
    import threading

    from starlette.testclient import TestClient

    from rag.serving import server
    from rag.pipeline import Pipeline

    release = threading.Event()

    def slow(*args, **kwargs):
        release.wait(30)
        raise server.StoreBusy("released")

    monkeypatch.setattr(Pipeline, "ask", slow)
    monkeypatch.setattr(server, "_STREAM_SLOTS", threading.BoundedSemaphore(1))
    with TestClient(server.create_app(seeded.settings)) as client:
        first: list[str] = []
        holder = threading.Thread(target=lambda: first.extend(
            client.post("/ask/stream", json={"question": "Why?"}).text.splitlines()))
        holder.start()
        time.sleep(1)
        second = client.post("/ask/stream", json={"question": "Why?"}).text
        release.set()
        holder.join(30)
    assert "answers are being streamed already" in second
    assert "event: error" in first and any("released" in line for line in first)


def test_text_that_is_not_unicode_is_an_mcp_error_not_silence(seeded):
    # Issue 12, case 1: before, a lone surrogate got no reply at all over MCP. The SDK's client cannot
    # even encode one, so this speaks JSON-RPC over the pipe itself, as any other client may.
    import os
    import queue
    import subprocess
    import sys
    import threading

    from conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "mcp"], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RAG_DATA_DIR": str(seeded.settings.data_dir), "HF_HUB_OFFLINE": "1"})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

    def send(text: str) -> None:
        proc.stdin.write(text.encode("ascii") + b"\n")
        proc.stdin.flush()

    def reply(wanted: int) -> dict:
        while True:
            message = json.loads(lines.get(timeout=60))  # queue.Empty: the server never answered
            if message.get("id") == wanted:
                return message

    try:
        send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}))
        reply(1)
        send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        send('{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ask", '
             '"arguments": {"question": "Why was the summit cancelled? \\udfff"}}}')
        asked = reply(2)
        send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                         "params": {"name": "search", "arguments": {"query": "Rosneft", "k": 1}}}))
        after = reply(3)
    finally:
        proc.kill()
    assert asked["result"]["isError"] and "not valid Unicode text" in asked["result"]["content"][0]["text"]
    assert not after["result"].get("isError")  # the session goes on
