"""Issue 12, case 5: a rebuild while `rag serve` reads the same data dir. Before, every read got 503 for
the whole of `rag ingest --rebuild`; now the new index is written beside the old one."""

import os
import subprocess
import sys
import time

from conftest import ROOT, reading

from rag import Pipeline, Settings


def test_readers_keep_the_old_index_during_a_rebuild(tmp_path, corpus, rag_server):
    data = tmp_path / "data"
    Pipeline(Settings(data_dir=data, corpus_dir=corpus)).ingest()
    server = rag_server(data, RAG_CORPUS_DIR=str(corpus))
    with reading(server, "Rosneft Lukoil sanctions", k=3, clients=2) as results:
        rebuilt = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", "--rebuild", str(corpus)], cwd=ROOT,
                                 env={**os.environ, "RAG_DATA_DIR": str(data)}, capture_output=True, text=True,
                                 timeout=300)
        time.sleep(2.5)  # the server notices the new publication within 2 s
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert len(results) > 10 and all(status == 200 and n == 3 for status, n in results), \
        [r for r in results if r[0] != 200][:3]
