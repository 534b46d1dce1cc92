"""Sources that disagree on a figure: the quantity reader, generated article pairs, and the pipeline."""

import pytest

from rag import Pipeline, Settings
from rag.answer.conflicts import find_conflicts, figures, parse_number


@pytest.mark.parametrize("text, value", [
    ("12", 12), ("1,200", 1200), ("2.5", 2.5), ("two", 2), ("twenty five", 25), ("three million", 3_000_000),
    ("two-and-a-half", 2.5), ("two and a half", 2.5), ("half", 0.5), ("banana", None),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


def test_figures_carry_their_unit():
    found = {(f.value, f.unit) for f in figures("A two-hour call, 82 senators, a 500% tariff and talks on June 25.")}
    assert found == {(2.0, "hour"), (82.0, "senat"), (500.0, "%"), (25.0, "date:june")}


# Generated article pairs: (sentence in article A, sentence in article B, do they conflict?)
PAIRS = [
    ("The meeting between the two ministers lasted three hours on Friday.",
     "On Friday the two ministers held a meeting that lasted four hours.", True),
    ("Officials said 40 people were injured in the blast in the city centre.",
     "The blast in the city centre injured 52 people, officials said.", True),
    ("The summit will open on March 3 in Geneva, diplomats said.",
     "Diplomats said the Geneva summit will open on March 5.", True),
    ("The meeting between the two ministers lasted three hours on Friday.",
     "The ministers' flight back to the capital took four hours.", False),  # hours of different things
    ("Officials said 40 people were injured in the blast in the city centre.",
     "Officials said 40 people were injured in the blast.", False),  # the same figure
]


@pytest.mark.parametrize("a, b, conflict", PAIRS)
def test_generated_pairs(a, b, conflict):
    found = find_conflicts([(1, "a.txt", a), (2, "b.txt", b)])
    assert bool(found) is conflict
    if conflict:
        assert found[0].citations == [1, 2]
    assert not find_conflicts([(1, "a.txt", a), (2, "a.txt", b)])  # one article is not two sources


def test_a_generated_pair_of_articles_shows_its_disagreement(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "wire.txt").write_text(
        "Ministers meet in Vienna\n\nThe foreign ministers of Austria and Slovenia met in Vienna on Friday. "
        "The meeting between the two ministers lasted three hours, officials said. They discussed energy and "
        "border controls, and agreed to meet again in the spring.\n")
    (corpus / "daily.txt").write_text(
        "Vienna talks end\n\nAustria and Slovenia ended their talks in Vienna on Friday evening. "
        "The meeting between the two ministers lasted five hours, according to a spokesman. The ministers "
        "signed no agreement but promised closer cooperation on energy.\n")
    pipeline = Pipeline(Settings(data_dir=tmp_path / "data", corpus_dir=corpus))
    pipeline.ingest()
    answer = pipeline.ask("How long did the meeting between the two ministers last?")
    assert not answer.abstained, answer.answer
    assert len(answer.conflicts) == 1 and set(answer.conflicts[0]["figures"]) == {"three hours", "five hours"}
    cited = {c.id: c.source for c in answer.citations}
    assert {cited[i].rsplit("/", 1)[-1] for i in answer.conflicts[0]["citations"]} == {"wire.txt", "daily.txt"}
    assert "The sources differ on how many hours" in answer.answer
