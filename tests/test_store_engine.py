"""A process that only answers (`rag ask`, `rag retrieve`) opens an embedded store through Chroma's own engine,
without the chromadb package: the same records as PersistentClient, and a fallback to it whenever the
engine is not the one checked."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import ROOT

from vectorstore import chroma


@pytest.fixture
def indexed(settings, corpus):
    from rag import Pipeline

    Pipeline(settings).ingest([corpus])
    return settings


def _open(settings, reader: bool):
    from rag.embedding.models import embedding_dimension

    return chroma.open_store(settings, settings.embed_model, embedding_dimension(settings.embed_model),
                             create=False, reader=reader)


def test_the_engine_reads_what_persistent_client_reads(indexed):
    from rag.embedding.models import get_embedder
    from rag.ingestion import sentence_store

    engine, client = _open(indexed, reader=True), _open(indexed, reader=False)
    assert isinstance(engine.client, chroma._EngineClient) and not isinstance(client.client, chroma._EngineClient)
    assert engine.contract == client.contract and engine.publication() == client.publication()
    assert engine.count() == client.count() > 0
    assert engine.all_ids() == client.all_ids()
    assert engine.ids_without(sentence_store.FORMAT_KEY, sentence_store.FORMAT) == []
    ids = client.all_ids()
    assert engine.get(ids) == client.get(ids)
    assert engine.get(ids[:3], keys=["source"]) == client.get(ids[:3], keys=["source"])
    assert engine.all_chunks(["source"]) == client.all_chunks(["source"])
    questions = ["How long did the Trump-Putin phone call last?", "Which oil companies were sanctioned?"]
    vectors = [get_embedder(indexed).get_query_embedding(q) for q in questions]
    for mine, theirs in zip(engine.query_many(vectors, 5), client.query_many(vectors, 5)):
        assert [i for i, _ in mine] == [i for i, _ in theirs]
        assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], abs=1e-6)
    assert engine.query_many(vectors[:1], 3, where={"source": {"$ne": "nothing"}})[0] == engine.query(vectors[0], 3)


def test_other_chromadb_releases_and_servers_are_read_with_persistent_client(indexed, monkeypatch):
    monkeypatch.setattr(chroma, "ENGINE_CHECKED_WITH", "0.0.0")
    assert not isinstance(_open(indexed, reader=True).client, chroma._EngineClient)
    monkeypatch.undo()
    assert not isinstance(_open(indexed, reader=False).client, chroma._EngineClient)  # a writer never
    assert chroma._engine_client(replace(indexed, chroma_host="127.0.0.1")) is None


def test_an_empty_data_dir_is_still_reported_as_empty(settings):
    from rag import Pipeline, StoreUnavailable
    from rag.pipeline import require_index

    with pytest.raises(StoreUnavailable, match="empty"):
        require_index(Pipeline(settings, read_only=True))


def test_a_read_only_pipeline_answers_without_importing_chromadb_and_refuses_to_ingest(indexed):
    script = ("import sys; from rag import Pipeline, Settings; "
              f"p = Pipeline(Settings(data_dir={str(indexed.data_dir)!r}), read_only={{}}); "
              "a = p.ask('How long did the Trump-Putin phone call last?'); "
              "print(bool(a.citations), 'chromadb' in sys.modules)")
    for read_only, imported in ((True, "False"), (False, "True")):
        out = subprocess.run([sys.executable, "-c", script.format(read_only)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, check=True).stdout.split()
        assert out == ["True", imported]
    from rag import Pipeline

    with pytest.raises(RuntimeError, match="read_only"):
        Pipeline(indexed, read_only=True).ingest()
