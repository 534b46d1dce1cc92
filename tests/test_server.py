"""`rag serve`: the REST API as a real process on loopback, over a real index."""

import json

import httpx
import pytest
from conftest import reading
from filelock import FileLock

from rag.cli import main

BUDAPEST = "Why was the Budapest summit cancelled?"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server over the five seeds for the read-only tests of this module."""
    from conftest import SEEDS, RagServer

    from rag import Pipeline, Settings

    data = tmp_path_factory.mktemp("served")
    Pipeline(Settings(data_dir=data, corpus_dir=SEEDS)).ingest()
    server = RagServer(data, data / "serve.log")
    yield server
    server.stop()


def test_retrieve_and_ask_speak_the_cli_json(shared, seeded, capsys):
    passages = httpx.post(f"{shared.url}/retrieve", json={"query": "Rosneft Lukoil sanctions", "k": 3}).json()
    assert len(passages) == 3
    assert {"id", "text", "score", "source", "title", "start", "end", "also_in"} <= set(passages[0])
    answer = httpx.post(f"{shared.url}/ask", json={"question": BUDAPEST}, timeout=30).json()
    main(["--data-dir", str(seeded.settings.data_dir), "ask", "--json", BUDAPEST])
    cli = json.loads(capsys.readouterr().out)
    assert set(answer) == set(cli) and answer["answer"] == cli["answer"]
    assert [c["quote"] for c in answer["citations"]] == [c["quote"] for c in cli["citations"]]


def test_filters_and_history(shared):
    only = httpx.post(f"{shared.url}/retrieve", json={
        "query": "sanctions", "k": 5, "filters": {"source": ["002_f2e8e39dc4325990.txt"]}}).json()
    assert only and {p["source"] for p in only} == {"seeds/002_f2e8e39dc4325990.txt"}
    follow = httpx.post(f"{shared.url}/retrieve", json={
        "query": "How did Moscow react to that?", "history": ["Which oil companies were sanctioned?"]}).json()
    assert any("Rosneft" in p["text"] or "Lukoil" in p["text"] for p in follow)


def test_sources_healthz_and_openapi(shared):
    assert len(httpx.get(f"{shared.url}/sources").json()) == 5
    health = httpx.get(f"{shared.url}/healthz").json()
    assert health["status"] == "ok" and health["store"]["chunks"] == 44 and health["model"]["loaded"]
    spec = httpx.get(f"{shared.url}/openapi.json").json()
    assert {"/retrieve", "/ask", "/ask/stream", "/ingest", "/sources", "/healthz"} <= set(spec["paths"])


def test_start_up_says_what_it_is_doing_and_where_it_listens(shared):
    shared.log.flush()
    printed = (shared.data_dir / "serve.log").read_text()
    loading, ready = printed.index("loading the model and opening the index"), printed.index("model loaded")
    assert loading < ready < printed.index(f"Uvicorn running on {shared.url}")
    assert "POST /retrieve" not in printed  # no access log


@pytest.mark.parametrize("page, asset", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_api_docs_load_their_scripts_from_the_server_not_a_cdn(shared, page, asset):
    html = httpx.get(shared.url + page).text
    assert "cdn." not in html and "https://" not in html.replace("https://fastapi.tiangolo.com", "")
    script = next(line.split('src="')[1].split('"')[0] for line in html.splitlines() if asset in line)
    assert script.startswith("/") and len(httpx.get(shared.url + script).content) > 500_000


@pytest.mark.parametrize("path, body, status, message", [
    ("/retrieve", {"query": "x", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ("/retrieve", {"query": "x", "k": 51}, 422, "k: Input should be less than or equal to 50"),
    ("/retrieve", {}, 422, "query: Field required"),
    ("/ask", {"question": "   "}, 422, "the question is empty"),
    ("/ask", {"question": "why " * 600}, 422, "characters long; the limit is 2,000"),
    ("/ask", {"question": "x", "mode": "magic"}, 422, "mode: Input should be"),
    ("/retrieve", {"query": "x", "filters": {"colour": "red"}}, 422, "unknown filter 'colour'"),
    ("/retrieve", {"query": "x", "filters": {"date_from": "yesterday"}}, 422, "must be a date like"),
    ("/retrieve", {"query": "x" * 70_000}, 413, "request body is"),
    ("/ingest", {}, 403, "ingest over HTTP is disabled"),
])
def test_bad_requests_get_a_4xx_and_a_clear_message(shared, path, body, status, message):
    response = httpx.post(f"{shared.url}{path}", json=body)
    assert response.status_code == status and message in response.json()["error"]


def test_ingest_needs_the_token_and_takes_one_writer_at_a_time(tmp_path, corpus, rag_server):
    from rag import Pipeline, Settings

    data = tmp_path / "data"
    Pipeline(Settings(data_dir=data, corpus_dir=corpus)).ingest()
    server = rag_server(data, RAG_API_TOKEN="s3cret", RAG_CORPUS_DIR=str(corpus))
    article = {"documents": [{"filename": "venue.txt", "text": "Hungarian officials inspected the Budapest "
                                                                "summit venue on Monday and found it ready."}]}
    assert httpx.post(f"{server.url}/ingest", json=article).status_code == 401
    bad = httpx.post(f"{server.url}/ingest", json=article, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "wrong token" in bad.json()["error"]
    with FileLock(str(data / "ingest.lock")):  # another writer holds the index
        busy = httpx.post(f"{server.url}/ingest", json=article, headers={"Authorization": "Bearer s3cret"})
    assert busy.status_code == 409 and "ingest" in busy.json()["error"]
    done = httpx.post(f"{server.url}/ingest", json=article, headers={"Authorization": "Bearer s3cret"}, timeout=60)
    assert done.status_code == 200 and done.json()["added"] == 1
    hits = httpx.post(f"{server.url}/retrieve", json={"query": "Budapest summit venue inspected", "k": 1}).json()
    assert hits[0]["source"].endswith(".txt") and "venue" in hits[0]["text"]


def test_readers_keep_working_while_an_ingest_runs(tmp_path, corpus, rag_server):
    from conftest import SEEDS

    from rag import Pipeline, Settings

    data = tmp_path / "data"
    Pipeline(Settings(data_dir=data, corpus_dir=corpus)).ingest()
    for name in ("000_c7ab87e678e88968.txt", "001_9a746d18b83cd2b7.txt", "003_0ea4331d0d193fdf.txt"):
        (corpus / name).write_text((SEEDS / name).read_text())
    server = rag_server(data, RAG_API_TOKEN="t", RAG_CORPUS_DIR=str(corpus))
    with reading(server, "Rubio Lavrov call", k=5, clients=4) as results:
        report = httpx.post(f"{server.url}/ingest", json={}, headers={"Authorization": "Bearer t"},
                            timeout=120).json()
    assert report["added"] == 3 and report["embedded_chunks"] > 0
    assert results and all(status == 200 and n == 5 for status, n in results), results[:5]


def test_read_token_protects_reads_when_set(tmp_path, seeded, rag_server):
    server = rag_server(seeded.settings.data_dir, RAG_API_READ_TOKEN="r")
    assert httpx.post(f"{server.url}/retrieve", json={"query": "x"}).status_code == 401
    ok = httpx.post(f"{server.url}/retrieve", json={"query": "x"}, headers={"Authorization": "Bearer r"})
    assert ok.status_code == 200
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # health stays open for load balancers


def test_streaming_answer_over_sse(seeded, llm_server, rag_server):
    server = rag_server(seeded.settings.data_dir, OPENAI_BASE_URL=llm_server.base_url, OPENAI_API_KEY="k",
                        OPENAI_MODEL="cite-ok")
    with httpx.stream("POST", f"{server.url}/ask/stream", json={"question": BUDAPEST}, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert events.count("token") > 1 and events[-1] == "answer"


def test_unreachable_chroma_server_is_degraded_not_dead(tmp_path, rag_server):
    from conftest import free_port

    server = rag_server(tmp_path / "data", CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(free_port()))
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert "search unavailable" in health.json()["store"]["error"]
    failed = httpx.post(f"{server.url}/retrieve", json={"query": "x"})
    assert failed.status_code == 503 and "search unavailable" in failed.json()["error"]


def test_bench_drives_a_server_and_prints_the_table(shared, capsys):
    # A functional check of the benchmark command (a second, two clients); figures are not asserted.
    code = main(["bench", "--url", shared.url, "--seconds", "1", "--clients", "2", "--ask-share", "0.5"])
    out = capsys.readouterr().out
    assert code == 0 and "/retrieve" in out and "/ask" in out and "p95 ms" in out
    assert "every question new" in out


@pytest.mark.parametrize("args, error", [
    (["serve", "--workers", "0"], "--workers must be between 1 and 64"),
    (["bench", "--clients", "0"], "--clients must be >= 1"),
    (["bench", "--ask-share", "2"], "--ask-share between 0 and 1"),
    (["bench", "--scale", "5"], "--scale needs chunk counts of at least 10"),
    (["bench", "--scale", "1000", "--queries", "0"], "--queries at least 1"),
    (["bench", "--scale", "1000", "--raw-sample", "0"], "--raw-sample between 0 (excluded) and 1"),
])
def test_serve_and_bench_reject_nonsense(capsys, args, error):
    assert main(args) == 2 and error in capsys.readouterr().err
