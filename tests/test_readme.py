"""The README's examples for Python, LlamaIndex, REST and MCP, run exactly as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

SECTION = re.search(r"## Embedding the retriever in your app(.*?)\n## ", (ROOT / "README.md").read_text(), re.S)
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION.group(1), re.S)
RAG = str(Path(sys.executable).with_name("rag"))


def run_example(code: str, data_dir: Path) -> str:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_readme_has_the_examples():
    assert len(BLOCKS) == 4 and "rag.__all__" in SECTION.group(1)


@pytest.mark.parametrize("index", [0, 1], ids=["python", "llamaindex"])
def test_python_and_llamaindex_examples(seeded, index):
    out = run_example(BLOCKS[index], seeded.settings.data_dir)
    assert ("Rosneft" in out and "5 documents indexed" in out) if index == 0 else "003_0ea4331d0d193fdf" in out


def test_rest_example(seeded, rag_server):
    server = rag_server(seeded.settings.data_dir)
    out = run_example(BLOCKS[2].replace("http://127.0.0.1:8000", server.url), seeded.settings.data_dir)
    assert out.startswith("ok\n") and "Budapest" in out and "event: answer" in out


def test_mcp_example(seeded):
    out = run_example(BLOCKS[3].replace(".venv/bin/rag", RAG), seeded.settings.data_dir)
    assert "Rosneft" in out


def test_all_is_explicit_and_importable():
    import rag

    assert rag.__all__ == sorted(rag.__all__) and len(rag.__all__) == len(set(rag.__all__))
    for name in rag.__all__:
        assert getattr(rag, name) is not None
    assert {"ask", "retrieve", "ingest", "sources", "get_retriever", "Filters", "Passage", "Answer"} <= set(rag.__all__)
    with pytest.raises(AttributeError):
        rag.not_a_thing  # noqa: B018


def test_the_exported_functions_stay_functions_after_the_stages_are_imported(tmp_path, corpus):
    """`rag.ingest` once was also a module (`rag/ingest.py`): the first call imported it and the import
    replaced the function on `rag`, so a second `rag.ingest(...)` raised "'module' object is not callable"."""
    code = ("import rag\n"
            f"rag.ingest([{str(corpus)!r}])\n"
            f"report = rag.ingest([{str(corpus)!r}])\n"
            "import rag.ingestion.incremental, rag.retrieval.search, rag.answer.extractive, rag.serving.render\n"
            "from rag import ingest, retrieve, ask\n"
            "print(report.documents, callable(rag.ingest), callable(rag.retrieve), callable(rag.ask),"
            " ingest is rag.ingest, retrieve is rag.retrieve)\n")
    assert run_example(code, tmp_path / "data").split() == ["2", "True", "True", "True", "True", "True"]
