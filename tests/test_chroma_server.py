"""The same pipeline against a real Chroma server process on loopback (`chroma run`)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, wait_for_http

from rag import Pipeline, StoreUnavailable

CHROMA = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))


def start_chroma(port: int, path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([CHROMA, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat"):
        proc.kill()  # never leave a half-started server behind a failed test
        pytest.fail("chroma server did not start")
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a server that ignores SIGTERM must not outlive the suite
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    port = free_port()
    proc = start_chroma(port, tmp_path_factory.mktemp("chroma-server"))
    yield port
    stop(proc)


def test_ingest_and_retrieve_through_a_chroma_server(settings, corpus, chroma_server):
    remote = settings.replace(chroma_host="127.0.0.1", chroma_port=chroma_server)
    pipeline = Pipeline(remote)
    first = pipeline.ingest([corpus])
    assert first.documents == 2 and first.embedded_chunks == first.chunks > 0
    assert not (remote.data_dir / "chroma").exists()  # nothing embedded on local disk
    assert pipeline.ingest([corpus]).embedded_chunks == 0
    answer = pipeline.ask("What tariff does the Senate bill propose?")
    assert "500%" in answer.answer


def test_an_unreachable_server_is_a_clear_error(settings, corpus):
    pipeline = Pipeline(settings.replace(chroma_host="127.0.0.1", chroma_port=free_port()))
    with pytest.raises(StoreUnavailable, match="search unavailable: cannot reach the Chroma server at 127.0.0.1"):
        pipeline.ingest([corpus])


def test_server_down_mid_session_then_back(settings, corpus, tmp_path):
    port = free_port()
    proc = start_chroma(port, tmp_path / "srv")
    try:
        pipeline = Pipeline(settings.replace(chroma_host="127.0.0.1", chroma_port=port))
        pipeline.ingest([corpus])
        assert pipeline.retrieve("Tomahawk", k=1)
    finally:
        stop(proc)
    with pytest.raises(StoreUnavailable, match="search unavailable"):
        pipeline.retrieve("Tomahawk", k=1)
    proc = start_chroma(port, tmp_path / "srv")
    try:
        assert pipeline.retrieve("Tomahawk", k=1)  # same pipeline, no restart of ours
    finally:
        stop(proc)


def test_replicas_sharing_a_server_see_only_published_chunk_sets(settings, corpus, chroma_server, tmp_path,
                                                                  monkeypatch):
    import rag.pipeline

    monkeypatch.setattr(rag.pipeline, "REFRESH_SECONDS", 0.0)
    writer = Pipeline(settings.replace(chroma_host="127.0.0.1", chroma_port=chroma_server, collection="shared"))
    writer.ingest([corpus])
    # A replica with a data dir of its own: its keyword index is rebuilt from what the server published.
    reader = Pipeline(writer.settings.replace(data_dir=tmp_path / "replica"))
    hit = reader.retrieve("bipartisan bill 500% tariff", k=1)[0]
    assert "500%" in hit.text and hit.keyword_score is not None
    # Chunks written but not yet published (an ingest under way) are invisible to readers...
    store = writer.searcher.store
    vector = writer.searcher.embedder.get_text_embedding("Zanzibar ferry timetable announced")
    store.upsert(["f" * 32], [vector], ["Zanzibar ferry timetable announced"],
                 [{"source": "x.txt", "path": "/x.txt", "title": "x", "start": 0, "end": 1}])
    assert all(p.id != "f" * 32 for p in reader.retrieve("Zanzibar ferry timetable", k=5))
    store.delete(["f" * 32])
    # ...and a finished ingest elsewhere is picked up without restarting the reader.
    (corpus / "new.txt").write_text("Officials in Zanzibar announced a new ferry timetable for the islands.\n")
    writer.ingest([corpus])
    assert "Zanzibar" in reader.retrieve("Zanzibar ferry timetable", k=1)[0].text
    # A change of metadata only (same chunk ids, so the same published id set) reaches the reader too.
    assert reader.retrieve("bipartisan bill 500% tariff", k=1)[0].metadata["author"] == "Oleksandr Bulin"
    article = corpus / "002_f2e8e39dc4325990.txt"
    article.write_text(article.read_text().replace("Oleksandr Bulin", "Olena Bulina"))
    assert writer.ingest([corpus]).embedded_chunks == 0
    assert reader.retrieve("bipartisan bill 500% tariff", k=1)[0].metadata["author"] == "Olena Bulina"


def test_eval_and_serve_use_the_chroma_server(settings, corpus, chroma_server, tmp_path, rag_server):
    import httpx

    from rag.evaluation import run_eval

    remote = settings.replace(chroma_host="127.0.0.1", chroma_port=chroma_server, collection="served")
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "What tariff does the Senate bill propose?", "answer": "500%", '
                    '"facts": [["500%"]], "sources": ["002_f2e8e39dc4325990.txt"], "answerable": true}\n')
    result = run_eval(gold, remote, corpus=corpus)
    assert result.metrics["fact_recall"] == 1.0 and not list((remote.data_dir / "evals").glob("*/chroma"))
    Pipeline(remote).ingest([corpus])
    server = rag_server(remote.data_dir, CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(chroma_server),
                        RAG_COLLECTION="served")
    assert httpx.get(f"{server.url}/healthz").json()["store"]["kind"] == "chroma-server"
    hits = httpx.post(f"{server.url}/retrieve", json={"query": "Tomahawk missiles", "k": 2}).json()
    assert len(hits) == 2
