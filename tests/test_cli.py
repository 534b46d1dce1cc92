"""The `rag` command: JSON contracts and clear errors."""

import json
import os
import subprocess
import sys

import pytest

from rag.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_json_contract(seeded, capsys):
    code, out, _ = run(capsys, "--data-dir", str(seeded.settings.data_dir), "ask", "--json",
                       "Why was the Budapest summit cancelled?")
    assert code == 0
    data = json.loads(out)
    assert set(data) >= {"question", "answer", "abstained", "mode", "citations", "passages", "timings_ms"}
    for c in data["citations"]:
        assert set(c) >= {"id", "source", "title", "quote", "start", "end", "also_in"}
        assert seeded.document_text(c["source"])[c["start"]:c["end"]] == c["quote"]


def test_ask_prints_answer_and_sources(seeded, capsys):
    code, out, _ = run(capsys, "--data-dir", str(seeded.settings.data_dir), "ask", "What did Rubio call Putin?")
    assert code == 0 and "[1]" in out and "gangster" in out and "also in" in out


def test_sources_lists_documents_and_duplicates(seeded, capsys):
    code, out, _ = run(capsys, "sources", "--json", "--data-dir", str(seeded.settings.data_dir))
    rows = json.loads(out)
    assert code == 0 and len(rows) == 5
    assert {"source", "title", "chunks", "duplicates"} <= set(rows[0])


def test_ingest_json_report(settings, corpus, capsys):
    code, out, _ = run(capsys, "--data-dir", str(settings.data_dir), "ingest", "--json", str(corpus))
    report = json.loads(out)
    assert code == 0
    assert set(report) >= {"documents", "chunks", "added", "updated", "removed", "unchanged", "skipped",
                           "embedded_chunks"}
    assert report["added"] == 2


def test_ingest_lists_a_screenful_of_near_duplicates_and_counts_the_rest(settings, tmp_path, capsys):
    from rag.cli import DUPLICATES_LISTED

    corpus = tmp_path / "wire"
    corpus.mkdir()
    story = ("Budapest summit called off. The White House said on Tuesday that the planned meeting in "
             "Budapest would not go ahead, after envoys failed to agree on terms for a ceasefire. ") * 3
    copies = DUPLICATES_LISTED + 5
    for n in range(copies):  # one wire story, as many outlets ran it
        (corpus / f"outlet{n:02d}.txt").write_text(f"Outlet {n}\n\n{story}", encoding="utf-8")
    code, out, _ = run(capsys, "--data-dir", str(settings.data_dir), "ingest", str(corpus))
    assert code == 0 and out.count("near-duplicate:") == DUPLICATES_LISTED
    assert "… and 5 more documents with near-duplicates" in out


@pytest.mark.parametrize("args, error", [
    (["ask", ""], "the question is empty"),
    (["ask", "   "], "the question is empty"),
    (["ask", "--k", "0", "sanctions"], "k must be between 1 and 50"),
    (["ask", "--k", "1000000", "sanctions"], "k must be between 1 and 50"),
    (["retrieve", "--k", "-3", "sanctions"], "k must be between 1 and 50"),
    (["ingest", "--passage-precision", "int4"], "passage_precision must be one of int8, float32, got 'int4'"),
    (["ingest", "--passage-precision", "int8"], "the index stores float32 passage vectors but passage_precision is int8"),
])
def test_bad_input_gets_a_clear_error(seeded, capsys, args, error):
    code, out, err = run(capsys, "--data-dir", str(seeded.settings.data_dir), *args)
    assert code == 2 and f"error: {error}" in err and "Traceback" not in err


def test_asking_an_empty_index_says_what_to_do(tmp_path, capsys):
    code, _, err = run(capsys, "--data-dir", str(tmp_path), "ask", "anything")
    assert code == 2 and "run `rag ingest` first" in err


def test_bad_setting_from_the_environment(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_CHUNK_SIZE", "lots")
    code, _, err = run(capsys, "--data-dir", str(tmp_path), "sources")
    assert code == 2 and "RAG_CHUNK_SIZE='lots' is not a valid int" in err


@pytest.mark.parametrize("module", ["rag", "rag.cli"])
def test_python_dash_m_runs_the_program(module, tmp_path):
    done = subprocess.run([sys.executable, "-m", module, "ask", "   "], capture_output=True, text=True,
                          env={**os.environ, "RAG_DATA_DIR": str(tmp_path / "data")}, timeout=120)
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_console_script_help_is_instant_and_light():
    # `rag --help` and `rag sources` must not import the heavy stack.
    probe = ("import sys, rag.cli; rag.cli._parser(); "
             "print(any(m in sys.modules for m in ('torch', 'chromadb', 'llama_index.core', 'sentence_transformers')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ)
    assert out.stdout.strip() == "False"
