"""Whole-collection reads and deletes go to Chroma a page at a time: one get() of ~90k chunks failed in
Chroma's SQLite ("too many SQL variables"). Real Chroma on a temp dir, with pages of 3 records."""

from __future__ import annotations

from rag import Pipeline


def test_every_record_is_read_and_deleted_across_pages(settings, corpus, monkeypatch):
    pipeline = Pipeline(settings)
    whole = pipeline.ingest()
    store = pipeline.searcher.store
    ids = store.all_ids()
    paths = dict(store.all_fields(["path", "start"]))
    chunk_ids, texts, metas = store.all_chunks()
    monkeypatch.setattr("vectorstore.chroma.PAGE", 3)
    assert whole.chunks > 3 * 3  # several pages
    assert store.all_ids() == ids and dict(store.all_fields(["path", "start"])) == paths
    assert store.all_chunks() == (chunk_ids, texts, metas)
    assert store.all_chunks(["source", "absent"]) == (chunk_ids, texts, [{"source": m["source"], "absent": None}
                                                                        for m in metas])
    assert set(store.get(ids)) == set(ids) and store.ids_without("no_such_key", "x") == ids
    assert pipeline.ingest(rebuild=True).chunks == whole.chunks  # a whole ingest through pages of 3
    store = pipeline.searcher.store
    store.delete(store.all_ids()[:7])
    assert store.count() == whole.chunks - 7
