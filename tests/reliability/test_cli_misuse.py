"""Issue 12, case 7: ordinary misuse of the command line gets a clear line, never a traceback: a
closed or full stdout, bytes that are not UTF-8 in a question or a path, a data dir that is a file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def _rag_shell(command: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    return subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m rag.cli {command}"], cwd=ROOT,
                          env=env, capture_output=True, timeout=300)


@pytest.mark.parametrize("redirect, status, message", [
    ("| head -c 5", 141, b""),  # the reader went away: the conventional SIGPIPE status, quietly
    ("| true", 141, b""),
    ("> /dev/full", 1, b"error: the disk is full"),
    (">&-", 1, b"error: standard output is closed"),
])
def test_a_closed_or_full_stdout_is_not_a_traceback(seeded, redirect, status, message):
    done = _rag_shell(f"ask 'Which oil companies were sanctioned?' {redirect}", seeded.settings.data_dir)
    assert b"Traceback" not in done.stderr and message in done.stderr
    # A reply that fits in the pipe's buffer is written before the reader goes: then 0 is right too.
    assert done.returncode in (0, status) if redirect.startswith("|") else done.returncode == status


@pytest.mark.parametrize("args, message", [
    ([b"ask", b"Who is \xff?"], b"the question is not valid Unicode text"),
    ([b"retrieve", b"\xfe\xff sanctions"], b"the question is not valid Unicode text"),
    ([b"--data-dir", b"/tmp/caf\xe9", b"ask", b"hi"], b"is not valid UTF-8"),
])
def test_bytes_that_are_not_utf8_get_one_clear_line(seeded, args, message):
    env = {**os.environb, b"RAG_DATA_DIR": os.fsencode(seeded.settings.data_dir)}
    done = subprocess.run([os.fsencode(sys.executable), b"-m", b"rag.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr and b"Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["ingest", "ask hi", "retrieve hi", "sources", "check", "serve --port 1"])
def test_a_data_dir_that_is_a_file_is_named(tmp_path, command):
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    done = _rag_shell(command, target)
    assert done.returncode == 2 and b"is a file, not a directory" in done.stderr and b"Traceback" not in done.stderr


def test_a_newline_in_a_file_name_stays_on_its_line(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "venue\nreport.txt").write_text("Hungarian officials inspected the Budapest summit venue on Monday.")
    data = tmp_path / "data"
    env = {**os.environ, "RAG_DATA_DIR": str(data)}
    for args in (["ingest", str(corpus)], ["sources"], ["retrieve", "Budapest venue"]):
        done = subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-1000:]
        assert not any(line.startswith("report.txt") for line in done.stdout.splitlines())
    assert "venue\\nreport.txt" in done.stdout


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to run the CLI as another user (root itself may write anywhere)")
@pytest.mark.parametrize("command", [["ask", "Who is Witkoff?"], ["retrieve", "Rosneft"], ["ingest"]])
def test_a_read_only_data_dir_is_named_not_called_damaged(seeded, command):
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="rag-read-only-", dir="/tmp"))  # pytest's own tmp is root-only
    data = top / "data"
    shutil.copytree(seeded.settings.data_dir, data)
    for path in (top, data, *data.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by all, writable by root only
    env = {**os.environ, "RAG_DATA_DIR": str(data), "HOME": str(top)}
    done = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m",
                           "rag.cli", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "is read-only for this user" in done.stderr, done.stderr[-1000:]
    assert "damaged" not in done.stderr and "Traceback" not in done.stderr
    shutil.rmtree(top)
