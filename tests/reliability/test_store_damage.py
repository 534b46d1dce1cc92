"""3. A damaged store: `rag check` (which probes it in a child process, since Chroma can crash its process
on a corrupt index) says "store damaged — run `rag ingest --rebuild`", and the rebuild, from the source
files, gives back the same answers to the gold questions, hence the same eval numbers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SEEDS

SANCTIONS = "Which Russian oil companies did the US sanction?"
QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "evals" / "gold.jsonl").read_text().splitlines()[:12]]
ANSWERS = """
import json, sys
from pathlib import Path
from rag import Pipeline, Settings
p = Pipeline(Settings(data_dir=Path(sys.argv[1]), corpus_dir=Path(sys.argv[2])))
print(json.dumps([[a.answer, [(c.source, c.start, c.end) for c in a.citations]]
                  for a in (p.ask(q, mode="extractive") for q in json.loads(sys.argv[3]))]))
"""


def _rag(data, *args):
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "RAG_DATA_DIR": str(data), "RAG_CORPUS_DIR": str(SEEDS)}, timeout=300)


def _answers(data):
    done = subprocess.run([sys.executable, "-c", ANSWERS, str(data), str(SEEDS), json.dumps(QUESTIONS)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    data = tmp_path_factory.mktemp("healthy") / "data"
    assert _rag(data, "ingest").returncode == 0
    check = _rag(data, "check")
    assert check.returncode == 0 and "store ok: 44 chunks" in check.stdout
    return data, _answers(data)


def _overwrite(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _damage(data, kind):
    sqlite = data / "chroma" / "chroma.sqlite3"
    if kind == "sqlite-header":
        _overwrite(sqlite, 0, b"not a database" * 8)
    elif kind == "sqlite-pages":
        _overwrite(sqlite, sqlite.stat().st_size // 3, b"\xff" * (sqlite.stat().st_size // 4))
    elif kind == "chunks-lost":
        import chromadb

        collection = chromadb.PersistentClient(str(data / "chroma")).get_collection("news_chunks")
        collection.delete(ids=collection.get(include=[])["ids"][:3])


@pytest.mark.parametrize("kind", ["sqlite-header", "sqlite-pages", "chunks-lost"])
def test_damage_is_reported_and_the_rebuild_restores_the_answers(healthy, tmp_path, kind):
    source, before = healthy
    data = tmp_path / "data"
    shutil.copytree(source, data)
    _damage(data, kind)
    check = _rag(data, "check")
    assert check.returncode == 1 and "store damaged — run `rag ingest --rebuild`" in check.stderr
    rebuilt = _rag(data, "ingest", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert _rag(data, "check").returncode == 0
    assert _answers(data) == before


def test_a_truncated_vector_index_file_never_gives_wrong_answers(healthy, tmp_path):
    """Chroma rebuilds a small collection's vector index from its log: then the store is whole, the check
    (which queries stored vectors back) says so, and answers are unchanged. If it did not, the check fails."""
    source, before = healthy
    data = tmp_path / "data"
    shutil.copytree(source, data)
    [index] = (data / "chroma").glob("*/data_level0.bin")
    with open(index, "r+b") as f:
        f.truncate(index.stat().st_size // 10)
    check = _rag(data, "check")
    if check.returncode == 0:
        assert _answers(data) == before
    else:
        assert "store damaged — run `rag ingest --rebuild`" in check.stderr


def before_sanctions(answers):
    return answers[QUESTIONS.index(SANCTIONS)][0]


def _damage_file(data, kind):
    """Issue 12's damage cases beyond Chroma's own files: what the outside probe broke."""
    if kind == "manifest-truncated":
        path = data / "manifest.json"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "manifest-garbled":
        (data / "manifest.json").write_bytes(b"\x00\xff" * 100)
    elif kind == "keyword-ids-deleted":
        (data / "keyword" / "ids.json").unlink()
    elif kind == "keyword-ids-truncated":
        path = data / "keyword" / "ids.json"
        path.write_bytes(path.read_bytes()[:50])
    elif kind == "keyword-chunk-ids-truncated":
        path = data / "keyword" / "chunk_ids.npy"
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "keyword-chunk-order-wrong":  # a well-formed array that no longer sorts the ids
        import numpy as np

        path = data / "keyword" / "chunk_order.npy"
        np.save(path, np.load(path)[::-1].copy())
    elif kind == "keyword-model-deleted":
        shutil.rmtree(data / "keyword" / "bm25")
    elif kind == "keyword-arrays-truncated":
        for path in (data / "keyword" / "bm25").glob("*.npy"):
            path.write_bytes(path.read_bytes()[:20])
    elif kind == "sqlite-truncated":
        path = data / "chroma" / "chroma.sqlite3"
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 3)
    elif kind == "chroma-dir-is-a-file":
        shutil.rmtree(data / "chroma")
        (data / "chroma").write_text("not a directory")


@pytest.mark.parametrize("kind", ["manifest-truncated", "keyword-ids-deleted", "keyword-model-deleted",
                                  "keyword-arrays-truncated", "keyword-chunk-ids-truncated", "keyword-chunk-order-wrong", "sqlite-truncated", "chroma-dir-is-a-file"])
def test_every_damaged_file_gets_the_one_message_and_the_rebuild_needs_none_of_them(healthy, tmp_path, kind):
    source, before = healthy
    data = tmp_path / "data"
    shutil.copytree(source, data)
    _damage_file(data, kind)
    asked = _rag(data, "ask", SANCTIONS)
    assert asked.returncode == 2 and "Traceback" not in asked.stderr
    assert "store damaged — run `rag ingest --rebuild`" in asked.stderr, asked.stderr[-500:]
    check = _rag(data, "check")
    assert check.returncode == 1 and "store damaged — run `rag ingest --rebuild`" in check.stderr
    rebuilt = _rag(data, "ingest", "--rebuild")  # reads nothing of the damaged index
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    again = _rag(data, "ask", "--json", SANCTIONS)
    assert again.returncode == 0 and json.loads(again.stdout)["answer"] == before_sanctions(before)


CRASHING_STORE = """
import ctypes, vectorstore.chroma
# A FAKE native crash: the probe's garbled HNSW file segfaulted Chroma, which this small index does not
# reproduce (Chroma rebuilds it from its log), so the query itself dereferences NULL.
vectorstore.chroma.ChunkStore.query_many = lambda *args, **kwargs: ctypes.string_at(0)
import rag.cli
rag.cli.entry()
"""


@pytest.mark.parametrize("command", [["ask", SANCTIONS], ["retrieve", "Rosneft"]])
def test_a_native_crash_inside_the_store_is_reported_as_damage(healthy, command):
    data, _ = healthy
    done = subprocess.run([sys.executable, "-c", CRASHING_STORE, *command], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "RAG_DATA_DIR": str(data)}, timeout=300)
    assert done.returncode == 2 and "Segmentation fault" not in done.stderr
    assert "store damaged — run `rag ingest --rebuild` (the command crashed inside the vector store: SIGSEGV)" \
        in done.stderr


def test_lost_cleaned_texts_are_damage_too(healthy, tmp_path):
    from rag import Pipeline, Settings
    from rag.errors import StoreDamaged

    data = tmp_path / "data"
    shutil.copytree(healthy[0], data)
    shutil.rmtree(data / "texts")
    with pytest.raises(StoreDamaged, match="store damaged — run `rag ingest --rebuild` \\(the cleaned text of"):
        Pipeline(Settings(data_dir=data, corpus_dir=SEEDS)).ask("Summarize the articles.")
