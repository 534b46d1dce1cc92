"""The sentence-level support check: LLM replies from the loopback stub (a FAKE model) that plant
unsupported sentences, change numbers and swap citations, checked with the real MiniLM and the fitted
weights (rag/data/support.json)."""

import json
import re

import numpy as np
import pytest
from test_answer import assert_citations_valid

from rag.answer.support import SUPPORT_FEATURES, SUPPORT_FILE, SupportModel, numbers_in
from rag.answer.support_train import changed_number

QUESTION = "Why was the Budapest summit cancelled?"


def _markers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def test_a_grounded_reply_is_kept_whole(llm_pipeline):
    pipeline = llm_pipeline("grounded")
    answer = pipeline.ask(QUESTION, mode="llm")
    assert answer.mode == "llm" and answer.notice is None
    assert [s["supported"] for s in answer.support] == [True, True]
    assert all(0.5 <= s["probability"] <= 1 for s in answer.support)
    assert answer.answer.count("[") == 2 and not any("left out" in w for w in answer.warnings)
    assert_citations_valid(pipeline, answer)


def test_a_planted_sentence_is_left_out_and_reported(llm_pipeline):
    pipeline = llm_pipeline("planted")
    answer = pipeline.ask(QUESTION, mode="llm")
    assert [s["supported"] for s in answer.support] == [True, False, True]
    invented = answer.support[1]
    assert "Lisbon" in invented["sentence"] and "Lisbon" not in answer.answer and answer.mode == "llm"
    assert any("does not support" in w and "Lisbon" in w for w in answer.warnings)
    # every id in the answer and in `support` is a citation; the kept sentences' come first
    ids = [c.id for c in answer.citations]
    assert ids == list(range(1, len(ids) + 1)) and set(invented["citations"]) <= set(ids)
    assert _markers(answer.answer) == {n for s in answer.support if s["supported"] for n in s["citations"]}
    assert max(_markers(answer.answer)) < min(set(invented["citations"]) - _markers(answer.answer), default=99)
    assert_citations_valid(pipeline, answer)


def test_a_changed_number_is_not_supported(llm_pipeline):
    answer = llm_pipeline("changed-number").ask("How many senators back the Russia sanctions bill?", mode="llm")
    changed = [s for s in answer.support if s["supported"] is False]
    assert len(changed) == 1 and changed[0]["sentence"] not in answer.answer
    assert numbers_in(changed[0]["sentence"]) - numbers_in(" ".join(p.text for p in answer.passages))


def test_swapped_citations_are_flagged_by_the_check_and_moved_to_the_supporting_passage(llm_pipeline):
    from rag.answer.extractive import sentence_vectors, stored_sentence_vectors
    from rag.answer.support import check_support

    pipeline = llm_pipeline("swapped")
    passages = pipeline.retrieve(QUESTION)
    assert passages[0].source != passages[1].source or passages[0].text != passages[1].text
    answer = pipeline.ask(QUESTION, mode="llm")
    sentences = [s["sentence"] for s in answer.support]
    # the check alone says no to both: each cites the other's passage
    embedder = pipeline.searcher.embedder
    verdicts = check_support(QUESTION, sentences, [[1], [2]], passages[:2], lambda t: sentence_vectors(embedder, t),
                             stored_sentence_vectors(passages[:2], embedder))
    assert [v.supported for v in verdicts] == [False, False]
    # the answerer cites each to the passage it came from instead, and says so
    assert answer.mode == "llm" and [s["recited"] for s in answer.support] == [True, True]
    by_id = {c.id: c for c in answer.citations}
    assert [by_id[s["citations"][0]].passage_id for s in answer.support] == [passages[1].id, passages[0].id]
    assert sum("not the one the model named" in w for w in answer.warnings) == 2
    assert_citations_valid(pipeline, answer)


def test_an_uncited_sentence_is_cited_to_the_passage_it_came_from_only_when_reciting(llm_pipeline):
    from rag.answer.citations import candidate_sentences
    from rag.answer.extractive import sentence_vectors, stored_sentence_vectors
    from rag.answer.support import check_support

    pipeline = llm_pipeline("cite-ok")
    passages = pipeline.retrieve(QUESTION)[:3]
    quoted = max((s.text for s in candidate_sentences(passages[2])), key=len)
    embedder = pipeline.searcher.embedder

    def check(recite):
        return check_support(QUESTION, [quoted], [[]], passages, lambda t: sentence_vectors(embedder, t),
                             stored_sentence_vectors(passages, embedder), recite=recite)[0]

    assert check(False).supported is None
    recited = check(True)
    assert recited.supported and recited.recited and recited.citations == [3] and recited.probability >= 0.5


def test_a_reply_without_markers_is_cited_by_the_check(llm_pipeline):
    pipeline = llm_pipeline("unmarked")
    passages = pipeline.retrieve(QUESTION)
    answer = pipeline.ask(QUESTION, mode="llm")
    assert answer.mode == "llm" and [s["recited"] for s in answer.support] == [True, True]
    by_id = {c.id: c for c in answer.citations}
    assert [by_id[s["citations"][0]].passage_id for s in answer.support] == [passages[0].id, passages[1].id]
    assert_citations_valid(pipeline, answer)


def test_every_sentence_unsupported_falls_back_to_the_extractive_answer(llm_pipeline):
    answer = llm_pipeline("all-unsupported").ask(QUESTION, mode="llm")
    assert answer.mode == "extractive" and "Showing the extractive answer instead" in answer.notice
    assert "Lisbon" not in answer.answer and answer.support == []


def test_uncited_sentences_no_passage_supports_are_marked_uncited_and_left_out(llm_pipeline):
    answer = llm_pipeline("bad-markers").ask(QUESTION, mode="llm")
    uncited = [s for s in answer.support if s["supported"] is None]
    assert uncited and all(s["sentence"] not in answer.answer and not s["citations"] for s in uncited)
    assert "Nobody cited this" in " ".join(s["sentence"] for s in uncited)


def test_ask_json_carries_the_support_list(seeded, llm_server, monkeypatch, capsys):
    from rag.cli import main

    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_MODEL", "planted")
    assert main(["--data-dir", str(seeded.settings.data_dir), "ask", QUESTION, "--mode", "llm", "--json"]) == 0
    support = json.loads(capsys.readouterr().out)["support"]
    assert {tuple(sorted(s)) for s in support} == {("citations", "probability", "recited", "sentence", "supported")}
    assert [s["supported"] for s in support].count(False) == 1


def test_the_weights_were_fitted_by_the_script_with_held_out_figures():
    data = json.loads(SUPPORT_FILE.read_text(encoding="utf-8"))
    assert data["model"]["features"] == list(SUPPORT_FEATURES) and data["threshold"] == 0.5
    held_out = data["report"]["held out"]
    assert held_out["precision of unsupported"] >= 0.9 and held_out["supported kept"] >= 0.8
    model = SupportModel.load()
    assert model.probabilities(np.zeros((1, len(SUPPORT_FEATURES)), dtype=np.float32)).shape == (1,)


@pytest.mark.parametrize("text, numbers", [
    ("It cost 4.2 million euros in 2024.", {"4.2", "2024"}),
    ("About 1,200 people came; 1200 left.", {"1200"}),
    ("No figures here.", set()),
])
def test_numbers_in(text, numbers):
    assert numbers_in(text) == numbers


def test_changed_number_keeps_the_shape_and_changes_the_value():
    changed = changed_number("The war began in 2022 with 150 soldiers.", "seed")
    assert changed != "The war began in 2022 with 150 soldiers." and re.search(r"in \d{4} with 150", changed)
    assert changed_number("No numbers.", "seed") is None


def test_eval_in_llm_mode_measures_the_check_on_planted_sentences(seeded, llm_server, tmp_path):
    from rag.evaluation import run_eval

    settings = seeded.settings.replace(data_dir=tmp_path, openai_base_url=llm_server.base_url, openai_model="cite-ok")
    result = run_eval("evals/gold.jsonl", settings, mode="llm", limit=4)
    metrics = result.metrics
    assert 0 < metrics["llm_answer_rate"] <= 1
    assert metrics["support_recall_planted"] is not None and metrics["support_precision_planted"] is not None
    counts = [q["planted"] for q in result.questions if q.get("planted")]
    assert sum(c["planted"] for c in counts) >= 4 and all(c["caught"] <= c["planted"] for c in counts)
    extractive = run_eval("evals/gold.jsonl", settings, mode="extractive", limit=2).metrics
    assert extractive["llm_answer_rate"] is None


def test_a_stratified_sample_is_half_answerable_and_stable():
    from rag.evaluation.gold import load_gold
    from rag.evaluation.runner import stratified_sample

    items = load_gold("evals/gold.jsonl")
    sample = stratified_sample(items, 10)
    assert len(sample) == 10 and sum(i.answerable for i in sample) == 5
    assert [i.id for i in sample] == [i.id for i in stratified_sample(list(items), 10)]
    assert [i.id for i in sample] == [i.id for i in items if i in sample]  # file order kept
