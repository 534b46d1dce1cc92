"""The article library: uploads kept in the data dir under their own name, removal from the index (and,
for an upload, from disk), on a real index in a temp dir."""

from __future__ import annotations

import pytest

from rag import Pipeline
from rag.errors import InputRejected
from rag.ingestion.uploads import label

VENUE = (b"Summit venue report\n\nHungarian officials inspected the Budapest summit venue on Monday and found it "
         b"ready for the two leaders. The venue inspection was completed before the cancellation was announced.\n")


@pytest.fixture
def library(settings, corpus):
    pipeline = Pipeline(settings)
    pipeline.ingest()
    return pipeline


def test_an_upload_is_kept_in_the_data_dir_counted_on_its_own_and_named_by_its_file(library, corpus):
    path, chunks = library.add_upload("../Venue report.txt", VENUE)
    assert path == library.settings.uploads_dir / "Venue report.txt" and chunks == 1
    assert sorted(p.name for p in corpus.iterdir()) == ["002_f2e8e39dc4325990.txt", "004_936fb12f57722203.txt"]
    [hit] = library.retrieve("Who inspected the summit venue?", 1)
    assert hit.source == str(path) and label(hit.source, library.settings) == "Venue report.txt"
    assert library.ingest().documents == 3  # a full ingest keeps it: the uploads folder is indexed too
    assert library.ingest(rebuild=True).documents == 3


def test_an_upload_loses_the_chrome_its_site_shares_with_the_indexed_articles(settings, tmp_path):
    """Lines repeated across articles are site chrome; an upload is read alone, so the lines of the
    articles already indexed (kept in the manifest) are counted too, and a full ingest afterwards finds
    the upload cleaned exactly as it would clean it, so nothing is embedded again."""
    chrome = "Harbour Ledger Markets Desk\n\nGet the Morning Ledger in your inbox\n\n"
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.txt").write_text(chrome + "Port volumes fell by two percent in March as container traffic slowed.\n")
    (site / "b.txt").write_text(chrome + "The harbour authority approved a new berth for bulk carriers on Tuesday.\n")
    pipeline = Pipeline(settings)
    pipeline.ingest([site, settings.uploads_dir])
    pipeline.add_upload("fuel.txt", (chrome + "Fuel prices at the port rose for a third week running.\n").encode())
    [hit] = pipeline.retrieve("Did fuel prices at the port rise?", 1)
    assert hit.text == "Fuel prices at the port rose for a third week running."
    again = pipeline.ingest([site, settings.uploads_dir])
    assert (again.documents, again.unchanged, again.updated, again.embedded_chunks) == (3, 3, 0, 0)


def test_removing_an_upload_takes_it_out_of_the_index_and_off_the_disk(library):
    path, _ = library.add_upload("venue.txt", VENUE)
    removed = library.remove(str(path))
    assert removed == 1 and not path.exists()
    assert [d["source"] for d in library.sources()] == sorted(d["source"] for d in library.sources()) != []
    assert all(d["source"] != str(path) for d in library.sources())
    assert all(p.source != str(path) for p in library.retrieve("Who inspected the summit venue?", 8))
    assert library.ingest().documents == 2  # and it does not come back


def test_removing_a_corpus_article_keeps_its_file_until_the_next_full_ingest(library, corpus):
    source = next(d["source"] for d in library.sources() if d["source"].endswith("002_f2e8e39dc4325990.txt"))
    chunks = next(d["chunks"] for d in library.sources() if d["source"] == source)
    assert library.remove(source) == chunks
    assert (corpus / "002_f2e8e39dc4325990.txt").exists()
    assert [d["source"] for d in library.sources()] != [] and source not in {d["source"] for d in library.sources()}
    assert all(p.source != source for p in library.retrieve("Rosneft Lukoil sanctions", 8))
    assert library.ingest().added == 1


def test_removing_an_unknown_article_changes_nothing(library):
    before = library.sources()
    with pytest.raises(InputRejected, match="not an indexed document: nowhere.txt"):
        library.remove("nowhere.txt")
    assert library.sources() == before


def test_suggested_questions_come_from_titles_newest_first_one_per_duplicate_group():
    from rag.answer.chat import suggested_questions

    sources = [{"source": "a", "title": "Old story", "date": "2025-01-01", "duplicates": []},
               {"source": "b", "title": "New story", "date": "2025-10-22", "duplicates": ["c"]},
               {"source": "c", "title": "New story, reprinted", "date": "2025-10-22", "duplicates": ["b"]},
               {"source": "d", "title": "", "date": None, "duplicates": []}]
    assert suggested_questions(sources, 4) == ["Summarize the articles.",
                                               "What do the articles say about “New story, reprinted”?",
                                               "What do the articles say about “Old story”?"]
    assert suggested_questions([], 3) == ["Summarize the articles."]
