"""`rag eval` end to end: real index, real model, reports, the gate, baselines, the judge over loopback."""

import json

import pytest

from rag.cli import main

SMALL_GOLD = [
    {"id": "s1", "question": "How many senators support the bipartisan bill on sanctions against Russia?",
     "answer": "82.", "facts": [["82"]], "sources": ["002_f2e8e39dc4325990.txt"], "answerable": True, "split": "dev"},
    {"id": "s2", "question": "Where are Rubio and Lavrov expected to attend a meeting later this month?",
     "answer": "Malaysia.", "facts": [["malaysia"]], "sources": ["004_936fb12f57722203.txt"], "answerable": True,
     "split": "test"},
    {"id": "s3", "question": "How many senators support it?", "answer": "82.", "facts": [["82"]],
     "sources": ["002_f2e8e39dc4325990.txt"], "answerable": True, "history": ["What does the sanctions bill propose?"],
     "split": "dev"},
    {"id": "s4", "question": "What did Emmanuel Macron say about the summit?", "answer": "The articles don't say.",
     "facts": [], "sources": [], "answerable": False, "split": "dev"},
    {"id": "s5", "question": "Where are Rubio and Lavrov expected to meet?", "answer": "Malaysia.",
     "facts": [["a fact no article states"]], "sources": ["004_936fb12f57722203.txt"], "answerable": True,
     "split": "test"},
]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gold(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SMALL_GOLD))
    return path


@pytest.fixture
def small_eval(tmp_path, gold, corpus, capsys):
    """One eval of the small gold set over a two-article corpus, with both reports."""
    data = tmp_path / "data"
    out = tmp_path / "reports"
    code, stdout, err = run(capsys, "--data-dir", data, "eval", "--gold", gold, "--corpus", corpus, "--no-gate",
                            "--json", out / "eval.json", "--markdown", out / "eval.md")
    return code, stdout, json.loads((out / "eval.json").read_text()), out, data


def test_eval_prints_the_table_and_writes_both_reports(small_eval):
    code, stdout, report, out, _ = small_eval
    assert code == 0
    assert "hit_at_8" in stdout and "fact_recall" in stdout and "dev (3)" in stdout and "test (2)" in stdout
    assert "s5 [test]" in stdout and "missing fact: a fact no article states" in stdout
    assert set(report["metrics"]) == {"hit_at_k", "recall_at_k", "mrr", "ndcg_at_k", "ndcg_at_10_docs",
                                      "recall_at_10_docs", "mrr_docs", "fact_recall", "answer_f1",
                                      "answer_rouge_l", "citation_validity", "citation_precision", "abstention_accuracy",
                                      "false_abstention_rate", "answer_words_mean", "latency_ms_p50",
                                      "latency_ms_p95", "llm_answer_rate", "support_precision_planted",
                                      "support_recall_planted"}
    # the LLM-mode measures are there, empty, in an extractive run
    assert all(report["metrics"][m] is None for m in ("llm_answer_rate", "support_precision_planted",
                                                      "support_recall_planted"))
    assert report["k"] == 8 and report["mode"] == "extractive" and set(report["splits"]) == {"dev", "test"}
    by_id = {q["id"]: q for q in report["questions"]}
    assert {"id", "passed", "fact_recall", "retrieved", "answer", "abstained"} <= set(by_id["s1"])
    assert by_id["s1"]["passed"] and "82" in by_id["s1"]["answer"]
    assert by_id["s3"]["passed"], "the follow-up is answered with its history"
    assert by_id["s4"]["passed"] and by_id["s4"]["abstained"]
    assert not by_id["s5"]["passed"]
    assert report["metrics"]["citation_validity"] == 1.0 and report["metrics"]["abstention_accuracy"] == 1.0
    markdown = (out / "eval.md").read_text()
    assert "![metrics](eval.png)" in markdown and "| fact_recall |" in markdown and "**s5**" in markdown
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_indexes_into_its_own_store_and_reuses_it(small_eval, gold, corpus, capsys, tmp_path):
    from rag import Pipeline, Settings

    _, _, report, _, data = small_eval
    assert Pipeline(Settings(data_dir=data)).is_empty(), "the user's main index is never touched"
    assert report["index"]["data_dir"].startswith(str(data / "evals"))
    assert report["index"]["embedded_chunks"] > 0
    code, _, _ = run(capsys, "--data-dir", data, "eval", "--gold", gold, "--corpus", corpus, "--no-gate",
                     "--json", tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    assert code == 0 and again["index"]["embedded_chunks"] == 0
    assert again["index"]["data_dir"] == report["index"]["data_dir"]
    (corpus / "004_936fb12f57722203.txt").write_text("A different article about Malaysia.\n")
    run(capsys, "--data-dir", data, "eval", "--gold", gold, "--corpus", corpus, "--no-gate",
        "--json", tmp_path / "edited.json")
    edited = json.loads((tmp_path / "edited.json").read_text())
    assert edited["index"]["data_dir"] != report["index"]["data_dir"], "an edited corpus gets a fresh index"


def test_baseline_comparison_lists_regressions_and_improvements(small_eval, gold, corpus, capsys, tmp_path):
    _, _, report, out, data = small_eval
    for q in report["questions"]:  # pretend s5 passed and s1 failed before
        q["passed"] = {"s5": True, "s1": False}.get(q["id"], q["passed"])
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(report))
    code, stdout, _ = run(capsys, "--data-dir", data, "eval", "--gold", gold, "--corpus", corpus, "--no-gate",
                          "--baseline", baseline, "--markdown", out / "compared.md")
    assert code == 0
    assert "1 regression(s), 1 improvement(s)" in stdout
    assert "regressed: s5" in stdout and "improved:  s1" in stdout
    assert "### Regressions" in (out / "compared.md").read_text()


def test_a_deliberate_regression_fails_the_gate_naming_the_metric(tmp_path, capsys):
    # The shipped gold set and thresholds; retrieving a single passage must break the gate.
    code, stdout, err = run(capsys, "--data-dir", tmp_path / "data", "eval", "--k", "1")
    assert code == 1
    assert "eval gate failed: fact_recall" in err and "eval gate failed: false_abstention_rate" in err
    assert "hit_at_1" in stdout


def test_a_gate_that_passes_says_so(gold, corpus, tmp_path, capsys):
    thresholds = tmp_path / "gate.toml"
    thresholds.write_text("[min]\ncitation_validity = 1.0\nabstention_accuracy = 0.9\n")
    code, stdout, err = run(capsys, "--data-dir", tmp_path / "data", "eval", "--gold", gold, "--corpus", corpus,
                            "--thresholds", thresholds)
    assert code == 0 and "eval gate passed" in stdout and not err


@pytest.mark.parametrize("args, error", [
    (["--gold", "{tmp}/missing.jsonl"], "gold file {tmp}/missing.jsonl does not exist"),
    (["--gold", "{tmp}/bad.jsonl"], "bad.jsonl:1: not valid JSON"),
    (["--corpus", "{tmp}/nowhere"], "corpus {tmp}/nowhere does not exist"),
    (["--thresholds", "{tmp}/bad.toml"], "not a gateable metric"),
    (["--baseline", "{tmp}/bad.json"], "is not a `rag eval --json` report"),
    (["--k", "0"], "k must be between 1 and 50"),
    (["--limit", "0"], "limit must be at least 1"),
])
def test_eval_bad_input_gets_a_clear_error(tmp_path, capsys, args, error):
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    (tmp_path / "bad.toml").write_text("[min]\nrecall = 1\n")
    (tmp_path / "bad.json").write_text('{"metrics": 1}')
    args = [a.format(tmp=tmp_path) for a in args]
    code, _, err = run(capsys, "--data-dir", tmp_path / "data", "eval", *args)
    assert code == 2 and error.format(tmp=tmp_path) in err


def test_gold_sources_must_exist_in_the_corpus(gold, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("Something else entirely.\n")
    code, _, err = run(capsys, "--data-dir", tmp_path / "data", "eval", "--gold", gold, "--corpus", other)
    assert code == 2 and "source '002_f2e8e39dc4325990.txt' is not a file in the corpus" in err


def test_judge_needs_an_llm(gold, corpus, tmp_path, capsys):
    code, _, err = run(capsys, "--data-dir", tmp_path / "data", "eval", "--gold", gold, "--corpus", corpus, "--judge")
    assert code == 2 and "--judge needs an LLM" in err


def test_judge_scores_are_reported_beside_never_gating(gold, corpus, tmp_path, capsys, llm_server, monkeypatch):
    # The stub (a labelled fake) answers LlamaIndex's evaluator prompts over real HTTP on loopback.
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_MODEL", "judge")
    code, stdout, _ = run(capsys, "--data-dir", tmp_path / "data", "eval", "--gold", gold, "--corpus", corpus,
                          "--mode", "extractive", "--judge", "--no-gate", "--json", tmp_path / "judged.json")
    report = json.loads((tmp_path / "judged.json").read_text())
    assert code == 0 and "LLM judge (reported only, never gated)" in stdout
    assert report["judge"]["metrics"] == {"faithfulness": 1.0, "correctness_mean": 4.5}
    assert report["judge"]["judged"] == 4 and llm_server.attempts("judge") >= 8
    assert "faithfulness" not in report["metrics"]


def test_benchmark_rows_are_scored_on_references_and_limit_cuts_the_run(tmp_path, corpus, capsys):
    """A ClapNQ-style row (no fact phrases, human reference answers) gets token F1 and ROUGE-L; --limit N
    evaluates only the first N rows."""
    rows = [{"id": "b1", "question": "How many senators support the bipartisan bill on sanctions against Russia?",
             "answer": "", "reference_answers": ["82 senators support the bill."], "facts": [],
             "sources": ["002_f2e8e39dc4325990.txt"], "answerable": True},
            {"id": "b2", "question": "Which team won the Super Bowl?", "answer": "", "facts": [], "sources": [],
             "answerable": False}]
    gold = tmp_path / "bench.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, _ = run(capsys, "--data-dir", tmp_path / "data", "eval", "--gold", gold, "--corpus", corpus,
                     "--no-gate", "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["metrics"]["fact_recall"] is None
    first = report["questions"][0]
    assert 0 < first["answer_f1"] <= 1 and 0 < first["answer_rouge_l"] <= 1
    assert report["metrics"]["answer_f1"] == round(first["answer_f1"], 4)
    assert report["metrics"]["ndcg_at_10_docs"] == 1.0 and report["metrics"]["recall_at_10_docs"] == 1.0
    code, _, _ = run(capsys, "--data-dir", tmp_path / "data", "eval", "--gold", gold, "--corpus", corpus,
                     "--no-gate", "--limit", "1", "--json", tmp_path / "r1.json")
    assert [q["id"] for q in json.loads((tmp_path / "r1.json").read_text())["questions"]] == ["b1"]
