"""14. The API key never shows: not in logs (debug level, every library's), tracebacks, error messages,
eval reports or the UI, even when a hostile LLM server repeats it back. Every output is grepped."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

KEY = "sk-test-CANARYKEY-9f8e7d6c5b4a39281706"


def _run(args, env):
    environ = {**os.environ, "OPENAI_API_KEY": KEY, "RAG_LOG_LEVEL": "DEBUG", **env}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, env=environ,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("model", ["echo-key", "401", "always-500", "bad-json", "cite-ok"])
def test_cli_output_and_debug_logs_never_show_the_key(seeded, llm_server, model):
    result = _run(["--data-dir", str(seeded.settings.data_dir), "ask", "--mode", "llm", "--json",
                   "Why was the Budapest summit cancelled?"],
                  {"OPENAI_BASE_URL": llm_server.base_url, "OPENAI_MODEL": model, "RAG_LLM_MAX_RETRIES": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DEBUG" in result.stderr  # debug logging really was on (openai, httpx, ours)
    assert KEY not in result.stdout + result.stderr
    assert KEY[8:20] not in result.stdout + result.stderr  # nor a recognisable part of it


def test_a_crash_traceback_is_redacted(seeded, tmp_path):
    broken = tmp_path / "sitecustomize.py"  # make the pipeline fail with the key in the exception message
    broken.write_text("import netguard\nimport rag.pipeline\n"
                      "def boom(*a, **k):\n"
                      f"    raise RuntimeError('upstream said: bad key {KEY}')\n"
                      "rag.pipeline.Pipeline.ask = boom\n")
    result = _run(["--data-dir", str(seeded.settings.data_dir), "ask", "anything"],
                  {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert result.returncode == 1 and "RuntimeError: upstream said: bad key [redacted]" in result.stderr
    assert KEY not in result.stderr


def test_eval_reports_never_show_the_key(tmp_path, llm_server, corpus):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "a", "question": "What tariff does the Senate bill propose?",
                                "answer": "500%", "facts": [["500%"]], "sources": ["002_f2e8e39dc4325990.txt"],
                                "answerable": True}) + "\n")
    result = _run(["--data-dir", str(tmp_path / "data"), "eval", "--gold", str(gold), "--corpus", str(corpus),
                   "--judge", "--no-gate", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")],
                  {"OPENAI_BASE_URL": llm_server.base_url, "OPENAI_MODEL": "judge"})
    assert result.returncode == 0, result.stderr[-2000:]
    written = "".join(p.read_text(errors="replace") for p in tmp_path.glob("r.*") if p.suffix != ".png")
    assert "judge" in written and KEY not in written + result.stdout + result.stderr


def test_the_chat_never_shows_the_key(seeded, llm_server):
    from streamlit.testing.v1 import AppTest

    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": llm_server.base_url, "OPENAI_MODEL": "echo-key",
           "RAG_DATA_DIR": str(seeded.settings.data_dir), "RAG_CORPUS_DIR": str(seeded.settings.corpus_dir)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        app.chat_input[0].set_value("Why was the Budapest summit cancelled?").run()
        shown = json.dumps([str(e.value) if hasattr(e, "value") else str(e) for e in app], default=str)
        shown += str(app.markdown) + str(app.warning) + str(app.error) + str(app.info) + str(app.sidebar)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert "rejected the API key" in shown and KEY not in shown


def test_any_logger_at_any_level_is_redacted(caplog):
    import logging

    from rag import Settings
    from rag.redact import install

    level = logging.getLogger().level
    with caplog.at_level(logging.DEBUG):
        install(Settings(openai_api_key=KEY, api_token="tok-ADMIN-1234", log_level="DEBUG"))
        logging.getLogger("openai._base_client").debug("Request options: %s", {"Authorization": f"Bearer {KEY}"})
        try:
            raise ValueError(f"server echoed {KEY}")
        except ValueError:
            logging.getLogger("httpx").exception("request failed with token %s", "tok-ADMIN-1234")
    logging.getLogger().setLevel(level)
    assert "Bearer [redacted]" in caplog.text and "token [redacted]" in caplog.text
    assert KEY not in caplog.text and "tok-ADMIN-1234" not in caplog.text
