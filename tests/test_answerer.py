"""The learned offline answerer on questions in a reader's own words: it refuses only on evidence, answers
with whole sentences, reads requests that are not questions, shows sources that disagree, and follows
a conversation. Real index of the seeds, real model, committed weights."""

import json
import re

import pytest
from test_answer import assert_citations_valid

from rag.answer.citations import candidate_sentences, is_list_fragment, whole_quotes
from rag.answer.scoring import (QUESTION_FEATURES, SENTENCE_FEATURES, WEIGHTS_FILE, AnswererModel, grounded,
                                missing_entities, question_entities)
from rag.answer.chat import condense, is_follow_up
from rag.retrieval.search import Passage
from rag.text import normalise, sentence_spans


def test_committed_weights_match_the_features_the_code_computes():
    data = json.loads(WEIGHTS_FILE.read_text())
    assert data["sentence"]["features"] == list(SENTENCE_FEATURES)
    assert data["answerable"]["features"] == list(QUESTION_FEATURES)
    model = AnswererModel.load()
    assert 0 < model.include_threshold < 1 and model.answer_threshold == 0.5
    # The file says what it was fitted on and what the held-out half scored.
    assert any("held out" in name for name in data["report"])


@pytest.mark.parametrize("question, expected", [
    ("Which Russian oil companies were hit by the new US sanctions?", ["Rosneft", "Lukoil"]),  # "hit": an ordinary verb
    ("What led to the cancellation of the planned Trump-Putin meeting in Budapest?", ["Budapest"]),  # "led"
    ("Who is Liana Fix?", ["Council on Foreign Relations"]),
])
def test_ordinary_words_missing_from_the_articles_are_no_reason_to_refuse(seeded, question, expected):
    answer = seeded.ask(question)
    assert not answer.abstained, answer.answer
    assert all(e in answer.answer for e in expected), answer.answer
    assert_citations_valid(seeded, answer)


@pytest.mark.parametrize("question, entities", [
    ("What's the role of Steve Witkoff?", ["Steve Witkoff"]),  # "What's" is no name
    ("Why did Russia's envoy leave?", ["Russia"]),
    ("How many of the 82 senators back it?", ["82"]),
    ("when did the us send aid to greece", []),  # lower-case questions name nothing by capitals
])
def test_question_entities(question, entities):
    assert question_entities(question) == entities


@pytest.mark.parametrize("entity, text, found", [
    ("Steve Witkoff", "envoy witkoff said", True),  # a surname grounds the full name
    ("Donbass", "in the donbas region", True),  # spelling variants by their first five letters
    ("Super Bowl", "a super majority", False),  # the head word must be there
    ("Macron", "merz and starmer", False),
])
def test_names_are_grounded_by_aliases(entity, text, found):
    assert grounded(entity, normalise(text)) is found


def test_a_name_no_passage_mentions_is_refused_with_the_name(seeded):
    answer = seeded.ask("What did Emmanuel Macron say about the Budapest summit?")
    assert answer.abstained and "Emmanuel Macron" in answer.answer and answer.citations == []
    assert missing_entities("Who is Liana Fix?", seeded.retrieve("Liana Fix")) == []


def test_answers_never_quote_a_bullet_label_or_list_title():
    text = "Key Takeaways:\n  • Imposition of new sanctions on Russia.\nThe Senate bill proposes a 500% tariff on imports."
    sentences = [s.text for s in candidate_sentences(Passage("p", text, "a.txt", "A", 0, len(text), 1.0))]
    assert sentences == ["The Senate bill proposes a 500% tariff on imports."]
    assert is_list_fragment("1. Sanctions on oil.") and not is_list_fragment("He said 1. That was all.")


def test_a_quotation_is_never_cut():
    text = 'Officials believed after the call that the U.S. “would not send Tomahawks. It was a bluff,” he said. Then.'
    passage = Passage("p", text, "a.txt", "A", 100, 100 + len(text), 1.0)
    joined = whole_quotes(sentence_spans(text, 100), passage)
    assert any(s.text.startswith("Officials") and s.text.endswith("he said.") for s in joined)
    assert all(text[s.start - 100:s.end - 100] == s.text for s in joined)


def test_a_sentence_leaning_on_the_one_before_brings_it_along(seeded):
    answer = seeded.ask("Who is Liana Fix?")
    for i, citation in enumerate(answer.citations):
        if re.match(r"^\W*(he|she|they|it)\b", citation.quote, re.I):
            assert i > 0 and answer.citations[i - 1].source == citation.source
            assert answer.citations[i - 1].end <= citation.start


@pytest.mark.parametrize("request_text, kind", [
    ("Summarize the articles.", "overview"),
    ("Tell me about the Alaska summit.", "overview"),
    ("Give me a timeline of the summit plans", "timeline"),
    ("What's in the corpus?", "articles"),
])
def test_requests_that_are_not_questions_get_an_overview(seeded, request_text, kind):
    answer = seeded.ask(request_text)
    assert answer.kind == kind and not answer.abstained, answer.answer
    assert_citations_valid(seeded, answer)
    if kind == "articles":
        assert answer.answer.startswith("The corpus holds 5 articles") and len(answer.citations) == 5
    if request_text.startswith("Summarize"):  # one lede per article; the two versions of one report count once
        assert len({c.source for c in answer.citations}) == len(answer.citations) == 4
    if "Alaska" in request_text:
        assert "Alaska" in answer.answer


def test_sources_that_disagree_are_shown_side_by_side(seeded):
    # The passage with the other figure ("two-hour") ranks 9th for this wording: ten passages bring it in.
    answer = seeded.ask("How long did the Trump–Putin phone call last?", k=10)
    assert answer.conflicts, answer.answer
    conflict = answer.conflicts[0]
    quotes = {c.id: c.quote for c in answer.citations}
    first, second = conflict["citations"]
    assert {"two-and-a-half-hour", "two-hour"} == set(conflict["figures"])
    assert any("003_" in c.source for c in answer.citations) and any("004_" in c.source for c in answer.citations)
    assert conflict["figures"][0] in quotes[first] and conflict["figures"][1] in quotes[second]
    assert "The sources differ" in answer.answer and answer.to_dict()["conflicts"] == answer.conflicts
    assert_citations_valid(seeded, answer)


@pytest.mark.parametrize("question, history, follow_up", [
    ("How did the Kremlin react?", ["Which Russian oil companies were hit by the new US sanctions?"], True),
    ("And what did Trump call them?", ["How did Moscow react to the sanctions on Rosneft and Lukoil?"], True),
    ("What did Russia demand in its memorandum at the Istanbul talks?", ["Who is Liana Fix?"], False),
    ("Who is Liana Fix?", ["Why was the Budapest summit cancelled?"], False),
    ("Why?", ["Why was the Budapest summit cancelled?"], True),
    ("What did he say?", ["What did Lavrov say about a ceasefire?"], True),
])
def test_follow_ups_are_read_from_what_the_question_lacks(question, history, follow_up):
    assert is_follow_up(question) is follow_up
    query = condense(question, history)
    assert (query != question) is follow_up
    if not follow_up:
        assert query == question  # a question that stands alone never picks up earlier topics


def test_follow_ups_are_resolved_against_the_conversation(seeded):
    kremlin = seeded.ask("How did the Kremlin react?",
                         history=["Which Russian oil companies were hit by the new US sanctions?"])
    assert "sanctions" in kremlin.query
    trump = seeded.ask("And what did Trump call them?",
                       history=["How did Moscow react to the sanctions on Rosneft and Lukoil?"])
    assert "Rosneft" in trump.query and not trump.abstained
    chained = condense("Why?", ["Which oil companies were sanctioned?", "How did Moscow react to them?"])
    assert "sanctioned" in chained  # resolved through the earlier follow-up


@pytest.mark.xfail(reason="known gap: the rewrite borrows the previous question's subject and verb too "
                          "('Moscow react'), so the passage with Trump's words is not retrieved", strict=True)
def test_follow_up_about_a_new_subject_finds_its_words(seeded):
    trump = seeded.ask("And what did Trump call them?",
                       history=["How did Moscow react to the sanctions on Rosneft and Lukoil?"])
    assert "tremendous" in trump.answer or "very big" in trump.answer, trump.answer
