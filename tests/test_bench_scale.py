"""`rag bench --scale`: the corpus it builds and one small end-to-end run (figures are not asserted:
they are a benchmark's output, not a test's)."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from rag.evaluation.bench_scale import _measured, build_corpus, run_scale_bench
from rag.errors import ConfigError

from conftest import SEEDS


@pytest.fixture
def source(tmp_path):
    """A benchmark-shaped folder: two articles and two queries."""
    root = tmp_path / "source"
    (root / "corpus").mkdir(parents=True)
    for name in ("002_f2e8e39dc4325990.txt", "004_936fb12f57722203.txt"):
        shutil.copy(SEEDS / name, root / "corpus" / name)
    rows = [{"id": "a", "question": "Why was the Budapest summit cancelled?", "sources": []},
            {"id": "b", "question": "Which oil companies were sanctioned?", "sources": []}]
    (root / "gold.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def test_past_the_originals_it_generates_articles_of_their_sentences(source, settings, tmp_path):
    written = build_corpus(source / "corpus", 60, tmp_path / "built", settings)
    files = sorted((tmp_path / "built").glob("*.txt"))
    assert written == len(files) > 2
    generated = files[2].read_text()
    assert generated.startswith("Generated article 2:")
    originals = " ".join(p.read_text() for p in (source / "corpus").glob("*.txt"))
    opening = " ".join(generated.split("\n\n", 1)[1].split()[:8])  # a run of sentences of one original
    assert opening in " ".join(originals.split())


def test_a_small_run_prints_the_table_and_writes_json(source, settings, tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert run_scale_bench(settings, [10], source=source, queries=2, plain=False, raw_sample=0.5,
                           json_out=out) == 0
    printed = capsys.readouterr().out
    assert "pipeline speed / raw model" in printed and "cold `rag ask`" in printed
    assert "from a 50% sample" in printed
    [result] = json.loads(out.read_text())
    assert result["ours"]["chunks"] >= 10 and result["ours"]["raw_model"]["sentences"] > 0
    assert result["ours"]["raw_model"]["sample"] == 0.5
    assert result["ours"]["cold_ask"]["seconds"] > 0 and "plain" not in result


def test_a_stopped_run_in_a_workdir_is_resumed_and_its_time_added_up(source, settings, tmp_path, capsys):
    workdir = tmp_path / "work"
    root = workdir / "10"
    root.mkdir(parents=True)
    # what a run killed during its ingest leaves: 5 s recorded by its heartbeat, nothing complete
    (root / "ingest_log.json").write_text(json.dumps({"runs": [{"started": 0, "seconds": 5.0}], "complete": False}))
    out = tmp_path / "scale.json"
    run = dict(source=source, queries=2, plain=False, raw_sample=0.5, json_out=out, workdir=workdir)
    assert run_scale_bench(settings, [10], **run) == 0
    [first] = json.loads(out.read_text())
    assert first["ours"]["ingest_runs"] == 2 and first["ours"]["index_seconds"] > 5.0
    assert "(in 2 runs)" in capsys.readouterr().out
    corpus_written = (root / "corpus.json").stat().st_mtime_ns

    assert run_scale_bench(settings, [10], **run) == 0  # all done: nothing rebuilt, nothing re-timed
    [second] = json.loads(out.read_text())
    assert (root / "corpus.json").stat().st_mtime_ns == corpus_written
    assert second["ours"]["ingest_runs"] == 2 and second["ours"]["index_seconds"] == first["ours"]["index_seconds"]
    assert second["ours"]["chunks"] == first["ours"]["chunks"] >= 10


def test_without_its_source_it_says_what_is_missing(settings, tmp_path):
    with pytest.raises(ConfigError, match="builds its corpus from"):
        run_scale_bench(settings, [10], source=tmp_path / "nowhere")


def test_a_measured_command_reports_its_own_peak_memory_not_the_benchs():
    """A child's ru_maxrss starts from its parent's: a small command started straight from a bench holding
    hundreds of MB read as large as the bench (a cold `rag ask` at 10k chunks: 337 MB instead of 174)."""
    ballast = bytearray(400 * 1024 * 1024)
    ballast[:: 4096] = b"\1" * len(ballast[:: 4096])  # touched, so resident
    code, out, usage = _measured([sys.executable, "-c", "print('hello')"], dict(os.environ), capture=True)
    assert (code, out.strip()) == (0, "hello")
    assert 0 < usage["peak_rss_mb"] < 100 and usage["seconds"] > 0
    code, _, _ = _measured([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), capture=False)
    assert code == 3
    assert len(ballast)  # held until here
