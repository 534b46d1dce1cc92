"""The eval's metric functions, gold-file validation and gate, on hand-made cases with known answers."""

import json
import math

import pytest
from conftest import ROOT, SEEDS

from rag.errors import GoldFileError, InputRejected
from rag.evaluation import Thresholds, aggregate, load_gold
from rag.evaluation import metrics as m

# ---- retrieval


def test_ranked_documents_dedupes_and_expands_collapsed_duplicates():
    assert m.ranked_documents([("a", []), ("b", ["a", "c"]), ("a", []), ("d", [])]) == ["a", "b", "c", "d"]


def test_hit_recall_and_reciprocal_rank():
    ranked, relevant = ["x", "a", "y", "b"], {"a", "b", "z"}
    assert m.hit(ranked, relevant) == 1.0 and m.hit(["x"], relevant) == 0.0
    assert m.recall(ranked, relevant) == pytest.approx(2 / 3)
    assert m.reciprocal_rank(ranked, relevant) == 0.5
    assert m.reciprocal_rank(["x", "y"], relevant) == 0.0


def test_ndcg_against_hand_computed_values():
    # DCG = 1/log2(3) + 1/log2(5); ideal puts both relevant documents first: 1 + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert m.ndcg(["x", "a", "y", "b"], {"a", "b"}, k=4) == pytest.approx(expected)
    assert m.ndcg(["a", "b"], {"a", "b"}, k=4) == pytest.approx(1.0)
    assert m.ndcg(["x", "y"], {"a"}, k=2) == 0.0


def test_ndcg_ideal_comes_from_the_gold_sources_not_from_what_was_retrieved():
    # Only one of two relevant documents retrieved, at rank 1: not a perfect score.
    assert m.ndcg(["a"], {"a", "b"}, k=5) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # ...but at k=1 one relevant document is all the ideal ranking can hold.
    assert m.ndcg(["a", "b"], {"a", "b"}, k=1) == pytest.approx(1.0)
    # Documents past k do not count.
    assert m.ndcg(["x", "a"], {"a"}, k=1) == 0.0


# ---- answers


@pytest.mark.parametrize("answer, phrasing, found", [
    ("Sanctions hit Rosneft and Lukoil [1].", "rosneft", True),
    ("ROSNEFT was named.", "Rosneft", True),  # case
    ("Trump’s call", "trump's", True),  # curly apostrophe
    ("a “gangster”", '"gangster"', True),  # curly quotes
    ("after his two‑hour call", "two-hour", True),  # non-breaking hyphen
    ("the measures — tremendous", "measures - tremendous", True),  # em dash
    ("Rosneft\n   and    Lukoil", "rosneft and lukoil", True),  # whitespace
    ("the ﬁnance ministry", "finance", True),  # NFKC ligature
    ("a twofold rise", "two", False),  # whole words only
    ("two-and-a-half-hour call", "two-hour", False),
    ("", "anything", False),
])
def test_fact_phrasing_matches_after_normalisation(answer, phrasing, found):
    assert (m.missing_facts(answer, [[phrasing]]) == []) is found


def test_facts_count_only_in_the_first_120_words_and_markers_are_not_words():
    filler = " ".join(["word"] * 119)
    assert m.missing_facts(f"{filler} rosneft", [["rosneft"]]) == []
    assert m.missing_facts(f"{filler} [1] [2] rosneft", [["rosneft"]]) == []
    assert m.missing_facts(f"{filler} more rosneft", [["rosneft"]]) == [["rosneft"]]


def test_fact_recall_counts_a_fact_when_any_phrasing_appears():
    facts = [["two-hour", "two hour"], ["lukoil"], ["rosneft"]]
    assert m.fact_recall("A two hour call about Rosneft.", facts) == pytest.approx(2 / 3)
    assert m.missing_facts("A two hour call about Rosneft.", facts) == [["lukoil"]]


def test_citation_problems_checks_markers_and_exact_quotes():
    text = "Rubio spoke to Lavrov. The summit was off."
    good = {"id": 1, "source": "a.txt", "start": 0, "end": 22, "quote": "Rubio spoke to Lavrov."}
    shifted = {**good, "id": 2, "start": 1, "end": 23}
    unknown = {**good, "id": 3, "source": "gone.txt"}

    def document_text(source):
        if source != "a.txt":
            raise InputRejected(f"{source!r} is not an indexed document")
        return text

    assert m.citation_problems("Claim [1].", [good], document_text) == []
    problems = m.citation_problems("Claim [1]. More [2]. Again [3]. Lost [4].", [good, shifted, unknown], document_text)
    assert problems == ["marker [4] has no citation", "[2] quote is not the text of a.txt at 1-23",
                        "[3] cites gone.txt, which cannot be read: 'gone.txt' is not an indexed document"]
    assert m.citation_checks("Claim [1]. Lost [4].", [good]) == 2


def test_percentile_is_nearest_rank():
    values = list(range(1, 11))
    assert m.percentile(values, 50) == 5 and m.percentile(values, 95) == 10 and m.percentile([7], 95) == 7
    assert m.percentile([], 50) is None


def _record(answerable, abstained, *, hit=1.0, facts=1.0, citations=(), in_sources=0, problems=(), latency=100.0):
    return {"answerable": answerable, "abstained": abstained, "hit": hit if answerable else None, "recall": hit,
            "reciprocal_rank": hit, "ndcg": hit, "fact_recall": facts if answerable else None,
            "citation_problems": list(problems), "citation_checks": len(citations),
            "citations": list(citations), "citations_in_sources": in_sources, "latency_ms": latency,
            "answer_words": 10}


def test_aggregate_on_hand_made_records():
    records = [
        _record(True, False, citations=[{}, {}], in_sources=1, latency=100),
        _record(True, True, hit=0.0, facts=0.0, latency=300),  # a false abstention
        _record(False, True, latency=200),  # a right abstention
        _record(False, False, citations=[{}], problems=["[1] quote is not the text"], latency=400),
    ]
    got = aggregate(records)
    assert got["hit_at_k"] == 0.5 and got["fact_recall"] == 0.5
    assert got["citation_precision"] == 0.5  # over answerable rows' citations: 1 of 2
    assert got["citation_validity"] == pytest.approx(2 / 3, abs=1e-4)  # 1 of 3 citations invalid
    assert got["abstention_accuracy"] == 0.5 and got["false_abstention_rate"] == 0.5
    assert got["latency_ms_p50"] == 200 and got["latency_ms_p95"] == 400


def test_aggregate_reports_none_where_nothing_applies():
    got = aggregate([_record(True, False)])
    assert got["abstention_accuracy"] is None and got["citation_precision"] is None


# ---- gold files

ROW = {"id": "q1", "question": "Which companies?", "answer": "Rosneft and Lukoil.", "facts": [["rosneft"]],
       "sources": ["a.txt"], "answerable": True}


def _write(tmp_path, *rows):
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("row, error", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ({k: v for k, v in ROW.items() if k != "facts"}, "missing field 'facts'"),
    ({**ROW, "extra": 1}, "unknown field 'extra'"),
    ({**ROW, "facts": ["rosneft"]}, "'facts' must be a list of non-empty lists of phrasings"),
    ({**ROW, "facts": [[]]}, "'facts' must be a list of non-empty lists"),
    ({**ROW, "answerable": "yes"}, "'answerable' must be true or false"),
    ({**ROW, "question": "  "}, "'question' must be a non-empty string"),
    ({**ROW, "history": "earlier"}, "'history' must be a list of questions"),
    ({**ROW, "reference_answers": "Rosneft"}, "'reference_answers' must be a list of answers"),
    ({**ROW, "selected_sentences": ["a"]}, "'selected_sentences' must be a list of lists of sentences"),
    ({**ROW, "sources": []}, "an answerable row needs at least one source"),
    ({**ROW, "answerable": False}, "must have no facts, sources or reference answers"),
    ({**ROW, "sources": ["missing.txt"]}, "source 'missing.txt' is not a file in the corpus"),
])
def test_gold_validation_names_the_line_and_the_problem(tmp_path, row, error):
    path = _write(tmp_path, {**ROW, "id": "q0"}, row)
    with pytest.raises(GoldFileError) as caught:
        load_gold(path, corpus_files=["a.txt", "sub/b.txt"])
    assert f"{path}:2: " in str(caught.value) and error in str(caught.value)
    assert caught.value.problems[0][0] == 2


def test_benchmark_rows_without_facts_are_accepted(tmp_path):
    row = {**ROW, "facts": [], "reference_answers": ["Rosneft and Lukoil.", "Two oil firms."],
           "selected_sentences": [["Rosneft and Lukoil were named ."]]}
    item, = load_gold(_write(tmp_path, row), corpus_files=["a.txt"])
    assert item.facts == [] and item.references == ["Rosneft and Lukoil.", "Two oil firms."]
    assert item.selected_sentences == [["Rosneft and Lukoil were named ."]]
    plain, = load_gold(_write(tmp_path, {**ROW, "facts": []}), corpus_files=["a.txt"])
    assert plain.references == [ROW["answer"]]  # the answer alone is the reference


def test_gold_validation_reports_every_bad_row_at_once(tmp_path):
    path = _write(tmp_path, "{bad", ROW, {**ROW}, {**ROW, "id": "q9", "answerable": 1})
    with pytest.raises(GoldFileError) as caught:
        load_gold(path)
    assert [line for line, _ in caught.value.problems] == [1, 3, 4]
    assert "id 'q1' is already used on line 2" in str(caught.value)


@pytest.mark.parametrize("content, error", [(None, "does not exist"), ("", "has no rows"), ("\n\n", "has no rows")])
def test_gold_file_missing_or_empty(tmp_path, content, error):
    path = tmp_path / "gold.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputRejected, match=error):
        load_gold(path)


def test_gold_sources_match_by_relative_path_or_file_name(tmp_path):
    path = _write(tmp_path, {**ROW, "sources": ["b.txt"]}, {**ROW, "id": "q2", "sources": ["sub/b.txt"]})
    items = load_gold(path, corpus_files=["a.txt", "sub/b.txt"])
    assert [i.split for i in items] == ["unsplit", "unsplit"]


def test_the_shipped_gold_set_covers_what_the_issue_asks():
    corpus = [p.name for p in SEEDS.iterdir()]
    items = load_gold(ROOT / "evals" / "gold.jsonl", corpus_files=corpus)
    assert len(items) >= 45
    assert sum(not i.answerable for i in items) >= 10
    assert {s for i in items for s in i.sources} == set(corpus)  # every article
    assert sum(1 for i in items if i.history) >= 3  # follow-ups
    held_out = [i for i in items if i.split == "test"]
    assert 0.15 <= len(held_out) / len(items) <= 0.25
    conflict = [i for i in items if "two-hour" in str(i.facts) and "two-and-a-half-hour" in str(i.facts)]
    assert conflict and set(conflict[0].sources) == {"003_0ea4331d0d193fdf.txt", "004_936fb12f57722203.txt"}


# ---- the gate

@pytest.mark.parametrize("toml, error", [
    ("[min]\nfact_recal = 0.8\n", "not a gateable metric"),
    ("[min]\nfact_recall = 'high'\n", "must be a number"),
    ("[minimum]\nfact_recall = 0.8\n", r"unknown table \[minimum\]"),
    ("[min\n", "cannot read thresholds file"),
])
def test_bad_thresholds_files_are_rejected(tmp_path, toml, error):
    path = tmp_path / "thresholds.toml"
    path.write_text(toml)
    with pytest.raises(InputRejected, match=error):
        Thresholds.load(path)


def test_gate_names_each_failing_metric(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text("[min]\nfact_recall = 0.85\nhit_at_k = 0.9\nabstention_accuracy = 0.9\n"
                    "[max]\nfalse_abstention_rate = 0.05\n")
    gate = Thresholds.load(path)
    metrics = {"fact_recall": 0.8, "hit_at_k": 0.95, "abstention_accuracy": None, "false_abstention_rate": 0.1}
    failures = gate.check(metrics)
    assert failures == ["fact_recall = 0.8 is below the threshold 0.85",
                        "abstention_accuracy was not measured (nothing in the gold set applies to it); "
                        "the gate needs >= 0.9",
                        "false_abstention_rate = 0.1 is above the threshold 0.05"]
    assert gate.check({"fact_recall": 0.85, "hit_at_k": 0.9, "abstention_accuracy": 1.0,
                       "false_abstention_rate": 0.05}) == []


# ---- wording against reference answers


@pytest.mark.parametrize("answer, references, f1", [
    ("The Reichsbank printed notes [1].", ["the Reichsbank printed notes"], 1.0),  # markers, articles, case
    ("Rosneft", ["Rosneft and Lukoil"], 0.5),  # precision 1, recall 1/3
    ("nothing shared", ["Rosneft"], 0.0),
    ("Rosneft", ["Lukoil", "Rosneft!"], 1.0),  # the best reference counts
    ("anything", [], 0.0),
])
def test_token_f1(answer, references, f1):
    assert m.token_f1(answer, references) == pytest.approx(f1)


def test_rouge_l_is_order_aware():
    assert m.rouge_l("a b c d", ["a b c d"]) == pytest.approx(1.0)
    # Same tokens, reversed order: F1 is perfect, the longest common subsequence is one token.
    assert m.token_f1("w x y z", ["z y x w"]) == pytest.approx(1.0)
    assert m.rouge_l("w x y z", ["z y x w"]) == pytest.approx(0.25)
    assert m.rouge_l("x", []) == 0.0


def test_a_bracketed_number_quoted_from_the_source_is_not_a_citation_marker():
    quote = "He lived to 74 [14] years ."
    citations = [{"id": 1, "source": "a.txt", "start": 0, "end": len(quote), "quote": quote}]
    assert m.citation_problems(f"{quote} [1]", citations, lambda _: quote) == []
    assert m.citation_checks(f"{quote} [1]", citations) == 1
    assert m.citation_problems(f"{quote} [1] More [2].", citations, lambda _: quote) == ["marker [2] has no citation"]
