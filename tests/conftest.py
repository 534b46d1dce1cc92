"""Shared fixtures: temp data dirs, the seed corpus indexed once per session, a loopback LLM stub."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download at test time
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("CHROMA_HOST", None)
# No network: this process and every Python process a test starts refuse off-machine connections.
_NETGUARD = Path(__file__).resolve().parent / "netguard"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_NETGUARD), os.environ.get("PYTHONPATH")]))
sys.path.insert(0, str(_NETGUARD))
import netguard  # noqa: E402,F401  (installs the guard in this process too)

sys.path.remove(str(_NETGUARD))
# The ONNX export of the model is made once and kept with the build output, not in the user's ~/.cache.
os.environ.setdefault("XDG_CACHE_HOME", str(Path(__file__).resolve().parent.parent / "build" / "cache"))

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def settings(tmp_path):
    from rag import Settings

    return Settings(data_dir=tmp_path / "data", corpus_dir=tmp_path / "corpus")


@pytest.fixture
def corpus(tmp_path):
    """A writable copy of two seed articles (one of each near-duplicate pair's side kept out)."""
    target = tmp_path / "corpus"
    target.mkdir()
    for name in ("002_f2e8e39dc4325990.txt", "004_936fb12f57722203.txt"):
        shutil.copy(SEEDS / name, target / name)
    return target


@pytest.fixture(scope="session")
def seeded(tmp_path_factory):
    """A Pipeline over all five seeds, ingested once for the whole session."""
    from rag import Pipeline, Settings

    data = tmp_path_factory.mktemp("seeded")
    pipeline = Pipeline(Settings(data_dir=data, corpus_dir=SEEDS))
    pipeline.ingest()
    return pipeline


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llm_server():
    """The deterministic OpenAI-compatible stub (tests/openai_stub.py) in its own process on loopback."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(TESTS / "openai_stub.py"), str(port)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    base = f"http://127.0.0.1:{port}/v1"

    def attempts(model: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
            return json.load(r).get(model, 0)

    def last(model: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/last/{model}", timeout=5) as r:
            return json.load(r)

    yield type("Stub", (), {"base_url": base, "attempts": staticmethod(attempts), "last": staticmethod(last)})
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def llm_pipeline(seeded, llm_server):
    """The seeded index answered by the stub LLM; pass the behaviour as the model name."""
    from rag import Pipeline

    def make(model: str, **overrides):
        s = seeded.settings.replace(openai_api_key="sk-test-not-real", openai_base_url=llm_server.base_url,
                                    openai_model=model, **overrides)
        return Pipeline(s)

    return make


def wait_for_http(url: str, timeout: float = 30.0) -> bool:
    """Poll a loopback URL until it answers 200 (a server we started is up)."""

    def up() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    return wait_until(up, timeout)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class RagServer:
    """`rag serve` in its own process on a free loopback port."""

    def __init__(self, data_dir: Path, log: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        environ = {**os.environ, "RAG_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **env}
        self.log = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(self.port)],
                                     env=environ, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

        def up() -> bool:
            try:
                urllib.request.urlopen(f"{self.url}/openapi.json", timeout=1)
                return True
            except OSError:
                return False

        if not wait_until(up, 90):
            self.stop()
            raise RuntimeError(f"rag serve did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


@pytest.fixture
def rag_server(tmp_path):
    """Start `rag serve` over a data dir with extra env vars: rag_server(data_dir, NAME=value, ...)."""
    servers = []

    def start(data_dir: Path, **env: str) -> RagServer:
        servers.append(RagServer(data_dir, tmp_path / f"serve-{len(servers)}.log", **env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@contextmanager
def reading(server: "RagServer", query: str, *, k: int, clients: int):
    """`clients` threads posting /retrieve until the block ends; yields their (status, passages or error)."""
    results, stop = [], threading.Event()

    def read():
        import httpx

        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                r = client.post(f"{server.url}/retrieve", json={"query": query, "k": k})
                results.append((r.status_code, len(r.json()) if r.status_code == 200 else r.text))

    readers = [threading.Thread(target=read) for _ in range(clients)]
    for t in readers:
        t.start()
    try:
        yield results
    finally:
        stop.set()
        for t in readers:
            t.join()
