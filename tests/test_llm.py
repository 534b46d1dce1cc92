"""LLM mode through the real `openai` client over real HTTP to the loopback stub (tests/openai_stub.py)."""


import pytest
from test_answer import assert_citations_valid

from rag.answer.citations import extract_markers


def test_cited_reply_becomes_validated_citations(llm_pipeline):
    pipeline = llm_pipeline("cite-ok")
    answer = pipeline.ask("Why was the Budapest summit cancelled?", mode="llm")
    assert answer.mode == "llm" and not answer.abstained and answer.notice is None
    reply = pipeline.retrieve("Why was the Budapest summit cancelled?")
    assert answer.answer.count("[") == 2 and answer.answer.split(" [")[0] in reply[0].text  # the stub's quote
    assert_citations_valid(pipeline, answer)
    assert answer.warnings == [] and [s["supported"] for s in answer.support] == [True, True]


def test_auto_mode_uses_the_llm_when_a_key_is_set(llm_pipeline):
    assert llm_pipeline("cite-ok").ask("Why was the Budapest summit cancelled?").mode == "llm"


def test_bad_markers_are_removed_and_reported(llm_pipeline):
    pipeline = llm_pipeline("bad-markers")
    answer = pipeline.ask("Why was the Budapest summit cancelled?", mode="llm")
    assert "[12]" not in answer.answer and "[x1]" not in answer.answer
    assert any("[12]" in w and "only 8 passages" in w for w in answer.warnings)
    assert any("malformed" in w and "[x1]" in w for w in answer.warnings)
    assert any("without a citation" in w for w in answer.warnings)
    assert [c.id for c in answer.citations] == [1]
    assert_citations_valid_markers_only(answer)


def assert_citations_valid_markers_only(answer):
    import re

    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)} == {c.id for c in answer.citations}


def test_abstention_from_the_model(llm_pipeline):
    answer = llm_pipeline("abstain").ask("Who won the Super Bowl?", mode="llm")
    assert answer.abstained and answer.citations == [] and answer.mode == "llm"


def test_an_uncited_reply_no_passage_supports_is_never_shown_as_an_answer(llm_pipeline):
    answer = llm_pipeline("uncited").ask("Why was the Budapest summit cancelled?", mode="llm")
    assert "weather" not in answer.answer
    assert answer.mode == "extractive" and answer.citations
    assert "cited none of the passages, and none supports it" in answer.notice


def test_streaming_yields_tokens_then_the_validated_answer(llm_pipeline):
    tokens = []
    answer = llm_pipeline("cite-ok").ask("Why was the Budapest summit cancelled?", mode="llm", on_token=tokens.append)
    assert len(tokens) > 3 and "".join(tokens).startswith(answer.answer[:40])
    assert answer.citations


def test_prompt_is_data_and_passages_are_delimited(seeded):
    from rag.answer.llm import build_messages

    passages = seeded.retrieve("Budapest", k=2)
    (system, example, example_answer, user), sent = build_messages("Why?", passages)
    assert sent == passages
    assert "untrusted" in system["content"] and "[1]" in system["content"]
    assert example["role"] == "user" and example_answer["role"] == "assistant" and "[1]" in example_answer["content"]
    assert '<passage id="1"' in user["content"] and '<passage id="2"' in user["content"]
    assert user["content"].rstrip().endswith("Question: Why?")


@pytest.mark.parametrize("reply, cited, warnings", [
    ("A [1]. B [2][3].", [[1], [2, 3]], 0),
    ("A [1, 2]. B [9].", [[1, 2], []], 2),  # out of range, then uncited
    ("A [source 2]. B [sic] holds [1].", [[2], [1]], 0),
    ("A [^1]. B [a1].", [[1], []], 2),
    ("Alpha rose. [1] Beta fell. [2][3] Gamma held.", [[1], [2, 3], []], 1),  # markers after the full stop
])
def test_marker_validation(reply, cited, warnings):
    sentences, numbers, problems = extract_markers(reply, passage_count=3)
    assert numbers == cited and len(problems) == warnings
    assert all("[" not in s or "[sic]" in s for s in sentences)


def test_llm_mode_without_any_endpoint_explains_and_falls_back(seeded):
    answer = seeded.ask("Why was the Budapest summit cancelled?", mode="llm")
    assert answer.mode == "extractive" and answer.citations
    assert "LLM mode needs OPENAI_API_KEY" in answer.notice


def test_the_prompt_is_sized_by_tokens(seeded):
    from rag.answer.llm import build_messages, prompt_tokens

    passages = seeded.retrieve("Budapest summit", k=8)
    everything, sent_all = build_messages("Why?", passages)
    short, sent = build_messages("Why?", passages, budget=800)
    assert len(sent_all) == 8 and 1 <= len(sent) < 8 and sent == passages[:len(sent)]
    assert prompt_tokens(short) <= 800 < prompt_tokens(everything)
    assert f'<passage id="{len(sent)}"' in short[-1]["content"] and f'<passage id="{len(sent) + 1}"' not in short[-1]["content"]
    one, first = build_messages("Why?", passages, budget=300)  # below one passage: the first is still sent
    assert first == passages[:1]


def test_a_local_model_prompt_of_800_tokens_goes_to_the_server(llm_pipeline, llm_server):
    from rag.answer.llm import prompt_tokens

    llm_pipeline("cite-ok", llm_prompt_tokens=800).ask("Why was the Budapest summit cancelled?", mode="llm")
    assert prompt_tokens(llm_server.last("cite-ok")["messages"]) <= 800
