"""scripts/profile_ingest.py, the README's ingest-versus-raw-model figures, run on two seed articles."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEEDS

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "profile_ingest.py"


def test_profile_ingest_times_the_model_calls_and_the_raw_model_on_the_same_texts(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in sorted(SEEDS.glob("*.txt"))[:2]:
        shutil.copy(path, corpus / path.name)
    out = subprocess.run([sys.executable, str(SCRIPT), str(corpus)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert re.search(r"ingest: 2 documents, \d+ chunks in [\d.]+ s", out.stdout)
    calls, padding = re.search(r"over (\d+) calls, padding ([\d.]+)%", out.stdout).groups()
    assert int(calls) >= 1 and 0 <= float(padding) < 100
    ratio = float(re.search(r"pipeline speed / raw model: ([\d.]+)x", out.stdout).group(1))
    assert 0 < ratio < 10
    model_cpu, beside, ceiling = re.search(r"CPU: the raw model ([\d.]+) s, the ingest beside the model ([\d.]+) s; "
                                           r"ceiling on \d+ cores ([\d.]+)x", out.stdout).groups()
    assert float(model_cpu) > 0 and float(beside) > 0
    assert float(ceiling) == pytest.approx(float(model_cpu) / (float(model_cpu) + float(beside)), abs=0.02)


def test_profile_ingest_explains_itself_without_a_folder():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "profile_ingest.py FOLDER" in out.stderr
