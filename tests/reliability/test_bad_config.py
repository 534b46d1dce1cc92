"""10. Gold files, gate thresholds, baselines and settings with errors: the file, the line and the problem.
(Every gold-row rule is covered one by one in tests/test_eval_metrics.py.)"""

from __future__ import annotations

import pytest

from rag import Settings
from rag.cli import main
from rag.errors import ConfigError, InputRejected
from rag.evaluation.gate import Thresholds
from rag.evaluation.report import load_baseline


@pytest.mark.parametrize("toml, line, problem", [
    ("[min]\nhit_at_k = 0.9\nfact_recal = 0.8\n", 3, "[min] fact_recal: not a gateable metric"),
    ("[min]\nhit_at_k = 0.9\n\n[max]\nfalse_abstention_rate = 'low'\n", 5,
     "[max] false_abstention_rate: must be a number, got 'low'"),
    ("[min]\nhit_at_k = 0.9\n[minimum]\nfact_recall = 0.8\n", 3, "unknown table [minimum]"),
])
def test_thresholds_errors_name_the_line(tmp_path, toml, line, problem):
    path = tmp_path / "thresholds.toml"
    path.write_text(toml)
    with pytest.raises(InputRejected) as caught:
        Thresholds.load(path)
    assert f"thresholds file {path}:{line}: {problem}" in str(caught.value)


def test_thresholds_syntax_errors_name_line_and_column(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text("[min]\nhit_at_k = \n")
    with pytest.raises(InputRejected, match=r"cannot read thresholds file .*line 2, column 12"):
        Thresholds.load(path)


def test_a_broken_baseline_names_line_and_column(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text('{"metrics": {},\n "questions": [,]}\n')
    with pytest.raises(InputRejected, match=r"cannot read baseline file .*line 2 column 16"):
        load_baseline(path)


def test_a_bad_gold_file_fails_the_eval_command_with_its_lines(tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Q?", "answerable": false, "facts": [], "sources": []}\n{oops\n')
    code = main(["--data-dir", str(tmp_path / "data"), "eval", "--gold", str(gold)])
    err = capsys.readouterr().err
    assert code == 2 and f"{gold}:2: not valid JSON" in err and "Traceback" not in err


@pytest.mark.parametrize("env, error", [
    ({"RAG_K": "eight"}, "RAG_K='eight' is not a valid int"),
    ({"RAG_K": "0"}, "k must be between 1 and 50, got 0"),
    ({"RAG_EMBED_RUNTIME": "gpu"}, "embed_runtime must be one of onnx, torch, got 'gpu'"),
    ({"RAG_INJECTION_CLASSIFIER": "maybe"},
     "RAG_INJECTION_CLASSIFIER='maybe' must be one of 1, 0, true, false, yes, no, on, off"),
    ({"RAG_LLM_MAX_TOKENS": "1000000"}, "llm_max_tokens must be 16..4096, got 1000000"),
])
def test_bad_settings_name_the_setting(env, error):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == error
