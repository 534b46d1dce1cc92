"""1, 2, 4. An ingest killed (SIGKILL) at any moment, a stale lock, an embedding failure mid-batch:
the next ingest ends exactly where a clean run ends (same documents, chunk ids, counts), and queries work.
Every write happens in a real `rag ingest` process; tests/reliability/killpoints/ picks the moment."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SEEDS, wait_until

KILLPOINTS = Path(__file__).resolve().parent / "killpoints"
SUMMARY = """
import json, sys
from pathlib import Path
from rag import Pipeline, Settings
from rag.retrieval.keyword import KeywordIndex, ids_digest
p = Pipeline(Settings(data_dir=Path(sys.argv[1])))
store = p.searcher.store
ids = store.all_ids()
keyword = KeywordIndex.load(p.settings.data_dir / "keyword")
hits = p.retrieve("Why was the Budapest summit cancelled?", k=5)
print(json.dumps({"ids": ids, "documents": {d["source"]: d["chunks"] for d in p.sources()},
                  "published": store.published(), "keyword": keyword.digest, "digest": ids_digest(ids),
                  "hits_published": all(h.id in keyword.chunks for h in hits) and len(hits) == 5}))
"""


def _ingest(data: Path, corpus: Path, kill_at: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "RAG_DATA_DIR": str(data), **env}
    if kill_at:
        environ.update(RAG_TEST_KILL_AT=kill_at, PYTHONPATH=os.pathsep.join([str(KILLPOINTS), environ["PYTHONPATH"]]))
    return subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(corpus)], env=environ, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _summary(data: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", SUMMARY, str(data)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _corpus_b(root: Path) -> Path:
    """The corpus after an edit: one article changed, one removed, 30 new ones (several embedding batches)."""
    corpus = root / "corpus-b"
    shutil.copytree(root / "corpus-a", corpus)
    (corpus / "004_936fb12f57722203.txt").unlink()
    edited = corpus / "002_f2e8e39dc4325990.txt"
    edited.write_text(edited.read_text().replace("82 senators", "eighty-two senators"))
    paragraphs = [p for s in sorted(SEEDS.glob("*.txt")) for p in s.read_text().split("\n\n") if len(p) > 200]
    for n in range(30):
        picked = random.Random(n).sample(paragraphs, 10)
        (corpus / f"wire-{n:02d}.txt").write_text(f"Wire digest {n}\n\n" + "\n\n".join(
            f"Bulletin {n}.{i}: {p}" for i, p in enumerate(picked)))
    return corpus


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Corpus A (indexed before each run) and corpus B, and what a clean ingest of B into A's index gives."""
    root = tmp_path_factory.mktemp("kill")
    (root / "corpus-a").mkdir()
    for name in ("002_f2e8e39dc4325990.txt", "003_0ea4331d0d193fdf.txt", "004_936fb12f57722203.txt"):
        shutil.copy(SEEDS / name, root / "corpus-a" / name)
    corpus_b = _corpus_b(root)
    indexed_a = root / "indexed-a"
    assert _ingest(indexed_a, root / "corpus-a").returncode == 0
    clean = root / "clean"
    shutil.copytree(indexed_a, clean)
    started = time.monotonic()
    assert _ingest(clean, corpus_b).returncode == 0
    return root, corpus_b, indexed_a, _summary(clean), time.monotonic() - started


def _data_dir_at_a(root: Path, indexed_a: Path, name: str) -> Path:
    data = root / name
    shutil.copytree(indexed_a, data)
    # the two corpora live at fixed paths, so a copied index of A points at corpus-a as the clean one did
    return data


@pytest.mark.parametrize("kill_at", ["embed:2", "upsert:3", "keyword:1", "manifest:1", "publish:1", "delete:1"])
def test_a_killed_ingest_is_finished_by_the_next_one(scenario, kill_at):
    root, corpus_b, indexed_a, clean, _ = scenario
    data = _data_dir_at_a(root, indexed_a, f"killed-{kill_at.replace(':', '-')}")
    killed = _ingest(data, corpus_b, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert _ingest(data, corpus_b).returncode == 0
    assert _summary(data) == clean


@pytest.mark.parametrize("fraction", [0.3, 0.7])
def test_a_kill_at_a_random_moment_is_finished_too(scenario, fraction):
    root, corpus_b, indexed_a, clean, seconds = scenario
    data = _data_dir_at_a(root, indexed_a, f"random-{fraction}")
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(corpus_b)], cwd=ROOT,
                            env={**os.environ, "RAG_DATA_DIR": str(data)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(seconds * fraction * random.uniform(0.8, 1.2))
    proc.kill()
    proc.wait(timeout=30)
    assert _ingest(data, corpus_b).returncode == 0
    assert _summary(data) == clean


def test_a_live_lock_fails_fast_and_a_dead_holders_lock_is_cleared(scenario):
    root, corpus_b, indexed_a, clean, _ = scenario
    data = _data_dir_at_a(root, indexed_a, "locks")
    slow = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(corpus_b)], cwd=ROOT,
                            env={**os.environ, "RAG_DATA_DIR": str(data), "RAG_TEST_KILL_AT": "",
                                 "RAG_EMBED_RUNTIME": "torch"},  # slower: a wide window while it holds the lock
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: (data / "ingest.lock").exists(), 60)
        time.sleep(0.5)
        started = time.monotonic()
        second = _ingest(data, corpus_b)
        assert second.returncode == 2 and "another ingest is running" in second.stderr
        assert time.monotonic() - started < 15  # a process start and a refusal, never a wait for the lock
    finally:
        slow.kill()  # SIGKILL: the lock file stays behind, its lock dies with the process
        slow.wait(timeout=30)
    assert (data / "ingest.lock").exists()
    assert _ingest(data, corpus_b).returncode == 0
    assert _summary(data) == clean


def test_an_embedding_failure_mid_run_keeps_whole_batches_and_the_rerun_embeds_only_the_rest(scenario):
    root, corpus_b, indexed_a, clean, _ = scenario
    data = _data_dir_at_a(root, indexed_a, "embed-fails")
    # A FAKE failure: the embedding model raises on its third batch (tests/reliability/killpoints/).
    failed = _ingest(data, corpus_b, RAG_TEST_FAIL_EMBED_AT="3",
                     PYTHONPATH=os.pathsep.join([str(KILLPOINTS), os.environ["PYTHONPATH"]]))
    assert failed.returncode == 2 and "embedding failed" in failed.stderr and "Traceback" not in failed.stderr
    stored = len(_summary(data)["ids"])
    rerun = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", "--json", str(corpus_b)], cwd=ROOT,
                           env={**os.environ, "RAG_DATA_DIR": str(data)}, capture_output=True, text=True, timeout=300)
    report = json.loads(rerun.stdout)
    after = _summary(data)
    assert after == clean
    new_in_clean = len(set(clean["ids"]) - set(_summary(indexed_a)["ids"]))
    assert report["embedded_chunks"] == new_in_clean - 2 * 64  # two whole batches were kept
    assert stored >= 2 * 64
