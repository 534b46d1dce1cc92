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
    assert wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat"), "chroma server did not start"
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
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
    pipeline = Pipeline(settings.replace(chroma_host="127.0.0.1", chroma_port=port))
    pipeline.ingest([corpus])
    assert pipeline.retrieve("Tomahawk", k=1)
    stop(proc)
    with pytest.raises(StoreUnavailable, match="search unavailable"):
        pipeline.retrieve("Tomahawk", k=1)
    proc = start_chroma(port, tmp_path / "srv")
    try:
        assert pipeline.retrieve("Tomahawk", k=1)  # same pipeline, no restart of ours
    finally:
        stop(proc)
