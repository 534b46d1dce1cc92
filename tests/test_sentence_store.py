"""Sentence vectors are computed at ingest and stored with each chunk: answering calls no model beyond
the query embedding, older indexes get them on the next ingest, and they never leak to a surface."""

from __future__ import annotations

import json
import numpy as np
import pytest

from rag.ingestion import sentence_store
from rag.text import Span


@pytest.fixture
def text_embedding_calls(monkeypatch):
    """Every text (not query) embedding the real ONNX MiniLM is asked for, in order (it still runs)."""
    from rag.embedding.onnx_model import OnnxSentenceEmbedding

    calls: list[list[str]] = []
    real = OnnxSentenceEmbedding.get_text_embedding_batch

    def counting(self, texts, **kwargs):
        calls.append(list(texts))
        return real(self, texts, **kwargs)

    monkeypatch.setattr(OnnxSentenceEmbedding, "get_text_embedding_batch", counting)
    return calls


def test_int8_storage_keeps_cosines():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[0] + 0.5 * vectors[1]
    query /= np.linalg.norm(query)
    spans = [Span(i * 10, i * 10 + 9, "x") for i in range(50)]
    decoded = sentence_store.decode(sentence_store.encode(spans, vectors))
    assert list(decoded) == [(s.start, s.end) for s in spans]
    got = np.array([decoded[(s.start, s.end)] for s in spans])
    assert np.abs(got @ query - vectors @ query).max() < 0.005


@pytest.mark.parametrize("value", [None, "", "f16:384:0-9:AAAA", "i8:384:0-9:not base64!", "i8:3:0-9,10-19:AAAA",
                                   "garbage"])
def test_unreadable_or_missing_vectors_mean_none_stored(value):
    assert sentence_store.decode(value) == {}


def test_a_chunk_without_sentences_encodes_to_nothing():
    assert sentence_store.decode(sentence_store.encode([], np.zeros((0, 384)))) == {}


def test_every_quotable_unit_of_a_chunk_is_stored():
    """A quotation running over two sentences is quoted whole, so it is stored whole too."""
    text = 'He said: "We cancelled it. It did not feel right." Then he left the room.'
    spans = sentence_store.spans_of(text, 100)
    assert (100, 100 + text.index("Then") - 1) in {(s.start, s.end) for s in spans}
    assert all(text[s.start - 100:s.end - 100] == s.text for s in spans)


def test_answering_embeds_only_the_query(seeded, text_embedding_calls):
    answer = seeded.ask("Which Russian oil companies were hit by the new US sanctions?")
    assert not answer.abstained and answer.citations
    assert text_embedding_calls == []


def test_vectors_stay_out_of_passages_and_nodes(seeded):
    from llama_index.core.schema import QueryBundle

    passage = seeded.retrieve("Budapest summit", k=1)[0]
    assert passage.sentence_vectors and sentence_store.decode(passage.sentence_vectors)
    assert not set(sentence_store.FIELDS) & set(passage.to_dict()["metadata"]) and "sentence_vectors" not in passage.to_dict()
    node = seeded.as_retriever().retrieve(QueryBundle("Budapest summit"))[0].node
    assert not set(sentence_store.FIELDS) & set(node.metadata)


def test_an_older_index_gets_them_on_the_next_ingest(settings, corpus, text_embedding_calls):
    from rag import Pipeline

    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    store = pipeline.searcher.store
    ids = store.all_ids()
    before = pipeline.ask("How long did the Trump-Putin phone call last?").answer
    store.update_metadata(ids, [{field: None for field in sentence_store.FIELDS}] * len(ids))  # as before issue 13
    meta_file = settings.data_dir / "keyword" / "ids.json"  # whose keyword index did not vouch for them either
    meta_file.write_text(json.dumps({k: v for k, v in json.loads(meta_file.read_text()).items() if k != "sentence_format"}))
    assert len(store.ids_without(sentence_store.FORMAT_KEY, sentence_store.FORMAT)) == len(ids)

    report = pipeline.ingest([corpus])
    assert report.embedded_chunks == 0 and report.sentence_vectors_added == len(ids)
    assert store.ids_without(sentence_store.FORMAT_KEY, sentence_store.FORMAT) == []
    text_embedding_calls.clear()
    again = Pipeline(settings)
    assert again.ask("How long did the Trump-Putin phone call last?").answer == before
    assert text_embedding_calls == []
