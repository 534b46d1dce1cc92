"""Extractive answers: cited, exact quotes, abstention."""

import re

import pytest

from rag import InputRejected


def assert_citations_valid(pipeline, answer):
    """Every sentence carries a marker, every marker resolves, every quote is the text at its offsets.
    A citation no marker uses belongs to a sentence the support check left out (in `support`)."""
    ids = {c.id for c in answer.citations}
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    left_out = {n for s in answer.support if not s["supported"] for n in s["citations"]}
    assert markers | left_out == ids and ids == set(range(1, len(ids) + 1))
    for sentence in re.split(r"(?<=\])\s+", answer.answer.strip()):
        assert re.search(r"\[\d+\]$", sentence), sentence
    for c in answer.citations:
        assert pipeline.document_text(c.source)[c.start:c.end] == c.quote


def test_budapest_question_is_answered_with_valid_citations(seeded):
    answer = seeded.ask("Why was the Budapest summit cancelled?")
    assert not answer.abstained and answer.citations
    assert_citations_valid(seeded, answer)
    assert "Budapest" in answer.answer
    assert len(re.sub(r"\[\d+\]", "", answer.answer).split()) <= 80


@pytest.mark.parametrize("question", [
    "Who won the Super Bowl?",
    "What did Macron say about the summit?",
    "What is the capital of Australia?",
    "How many goals did Messi score last season?",
    "What did the Hungarian ambassador say about the summit?",
])
def test_abstains_when_the_articles_do_not_say(seeded, question):
    answer = seeded.ask(question)
    assert answer.abstained
    assert answer.answer.startswith("The articles don't say")
    assert answer.citations == []


@pytest.mark.parametrize("question, expected", [
    ("What did Rubio call Putin?", "gangster"),
    ("What tariff does the Senate bill propose?", "500%"),
    ("When is the NATO summit?", "June 25"),
    ("What did Lavrov say about a ceasefire?", "ceasefire"),
])
def test_answers_single_facts(seeded, question, expected):
    answer = seeded.ask(question)
    assert expected in answer.answer
    assert_citations_valid(seeded, answer)


@pytest.mark.parametrize("question, expected", [
    ("Why did Trump scrap the Budapest summit?", "Budapest"),  # the articles say cancel, never scrap
    ("In June, did Trump back new sanctions on Russia?", "will not support"),  # June: only the June article
    ("How many countries' leaders joined Zelensky's statement?", "nine countries"),
])
def test_paraphrases_dates_and_counts_are_answered(seeded, question, expected):
    answer = seeded.ask(question)
    assert not answer.abstained and expected in answer.answer
    assert_citations_valid(seeded, answer)


def test_near_duplicate_sources_are_listed(seeded):
    answer = seeded.ask("What did Rubio call Putin?")
    cited = {c.source.rsplit("/", 1)[-1] for c in answer.citations} | {
        s.rsplit("/", 1)[-1] for c in answer.citations for s in c.also_in}
    assert {"000_c7ab87e678e88968.txt", "001_9a746d18b83cd2b7.txt"} <= cited


def test_follow_up_uses_the_conversation(seeded):
    answer = seeded.ask("How did Moscow react to them?", history=["Which oil companies were sanctioned?"])
    assert "oil" in answer.query and "sanctioned" in answer.query
    # The rewritten query finds the passage on Moscow's reaction to the Rosneft and Lukoil sanctions. (Whether
    # the answerer quotes it is the learned answerability's call: 0.48 against its 0.5 operating point here.)
    assert any("Rosneft" in p.text and "Moscow" in p.text for p in answer.passages[:2])


def test_answer_json_contract(seeded):
    data = seeded.ask("Why was the Budapest summit cancelled?").to_dict()
    assert {"question", "answer", "abstained", "mode", "citations", "passages", "timings_ms"} <= set(data)
    assert data["mode"] == "extractive"
    assert set(data["citations"][0]) >= {"id", "source", "title", "quote", "start", "end", "also_in"}
    assert {"retrieve", "answer", "total"} <= set(data["timings_ms"])


@pytest.mark.parametrize("question, error", [
    ("", "the question is empty"),
    ("   \n\t ", "the question is empty"),
    ("\x00\x01\x02", "the question is empty"),
    ("?!…", "no letters or digits"),
    ("x" * 5000, "limit is 2,000"),
])
def test_bad_questions_are_refused(seeded, question, error):
    with pytest.raises(InputRejected, match=error):
        seeded.ask(question)


@pytest.mark.parametrize("k", [0, -1, 10**6])
def test_bad_k_is_refused(seeded, k):
    with pytest.raises(InputRejected, match="k must be between 1 and 50"):
        seeded.ask("sanctions", k=k)
