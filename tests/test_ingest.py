"""Ingestion on real Chroma in temp dirs with the real embedding model."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SEEDS

from rag import Pipeline, StoreBusy, StoreMismatch
from rag.ingestion.documents import load_documents
from rag.ingestion.incremental import chunk_document


def test_chunks_point_at_exact_spans_of_the_cleaned_text(settings):
    from llama_index.core.utils import get_tokenizer

    docs, _ = load_documents(sorted(SEEDS.glob("*.txt")), 10_000_000)
    tokens = get_tokenizer()
    for doc in docs:
        chunks = chunk_document(doc, settings)
        assert len(chunks) > 1
        for chunk in chunks:
            assert doc.text[chunk.start:chunk.end] == chunk.text
            assert len(tokens(chunk.text)) <= settings.chunk_size
        assert chunks[0].start == 0 and chunks[-1].end == len(doc.text.rstrip())
        assert len({c.id for c in chunks}) == len(chunks)


def test_chunk_size_is_configurable(settings):
    docs, _ = load_documents([SEEDS / "004_936fb12f57722203.txt"], 10_000_000)
    small = chunk_document(docs[0], settings.replace(chunk_size=64, chunk_overlap=8))
    large = chunk_document(docs[0], settings.replace(chunk_size=400, chunk_overlap=8))
    assert len(small) > 2 * len(large)


def test_reingest_embeds_nothing_and_edit_replaces_only_changed_chunks(settings, corpus, monkeypatch):
    import rag.ingestion.incremental
    from vectorstore.chroma import ChunkStore

    calls: dict[str, int] = {"chunk_document": 0, "all_fields": 0, "all_ids": 0, "ids_for_path": 0}

    def counted(name, real):
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(rag.ingestion.incremental, "chunk_document", counted("chunk_document", rag.ingestion.incremental.chunk_document))
    monkeypatch.setattr(ChunkStore, "all_fields", counted("all_fields", ChunkStore.all_fields))
    monkeypatch.setattr(ChunkStore, "all_ids", counted("all_ids", ChunkStore.all_ids))
    monkeypatch.setattr(ChunkStore, "ids_for_path", counted("ids_for_path", ChunkStore.ids_for_path))
    pipeline = Pipeline(settings)
    first = pipeline.ingest([corpus])
    assert (first.added, first.documents, first.skipped) == (2, 2, [])
    assert first.embedded_chunks == first.chunks > 0

    calls.update(dict.fromkeys(calls, 0))
    again = pipeline.ingest([corpus])
    assert (again.embedded_chunks, again.unchanged, again.added, again.updated) == (0, 2, 0, 0)
    assert again.chunks == first.chunks
    # Unchanged documents are not chunked again, and the collection is read in one scan of its ids, not per
    # document: the published keyword index says which document each chunk is of.
    assert calls == {"chunk_document": 0, "all_fields": 0, "all_ids": 1, "ids_for_path": 0}

    article = corpus / "004_936fb12f57722203.txt"
    article.write_text(article.read_text() + "\n\nA late paragraph says the envoys met in Vienna on Friday.\n")
    edited = pipeline.ingest([corpus])
    assert (edited.updated, edited.unchanged) == (1, 1)
    assert 1 <= edited.embedded_chunks <= 2  # only the tail chunk(s) changed
    hits = pipeline.retrieve("Where did the envoys meet on Friday?", k=3)
    assert "Vienna" in hits[0].text

    assert calls["chunk_document"] == 1  # the edited document only

    article.unlink()
    removed = pipeline.ingest([corpus])
    assert (removed.removed, removed.documents) == (1, 1)
    assert all(p.source.endswith("002_f2e8e39dc4325990.txt") for p in pipeline.retrieve("Budapest summit", k=5))


def test_reingest_redoes_a_document_whose_chunks_went_missing_or_whose_chunker_changed(settings, corpus):
    pipeline = Pipeline(settings)
    first = pipeline.ingest([corpus])
    store = pipeline.searcher.store
    store.delete(store.all_ids()[:1])  # lost from the store, say by hand: the next ingest puts it back

    mended = pipeline.ingest([corpus])
    assert (mended.embedded_chunks, mended.chunks, mended.updated, mended.unchanged) == (1, first.chunks, 1, 1)

    rechunked = Pipeline(settings.replace(chunk_size=120, chunk_overlap=20)).ingest([corpus])
    assert (rechunked.updated, rechunked.unchanged) == (2, 0)
    assert rechunked.chunks > first.chunks and rechunked.embedded_chunks == rechunked.chunks


def test_near_duplicates_are_detected(seeded):
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in seeded.sources()}
    assert [d.rsplit("/", 1)[-1] for d in rows["000_c7ab87e678e88968.txt"]["duplicates"]] == ["001_9a746d18b83cd2b7.txt"]
    assert [d.rsplit("/", 1)[-1] for d in rows["001_9a746d18b83cd2b7.txt"]["duplicates"]] == ["000_c7ab87e678e88968.txt"]
    assert all(not rows[n]["duplicates"] for n in ("002_f2e8e39dc4325990.txt", "003_0ea4331d0d193fdf.txt",
                                                    "004_936fb12f57722203.txt"))


def test_near_duplicates_are_grouped_again_only_when_documents_or_the_threshold_change(settings, monkeypatch):
    import rag.ingestion.incremental
    from conftest import SEEDS

    groupings: list[float] = []
    real = rag.ingestion.incremental.near_duplicate_groups
    monkeypatch.setattr(rag.ingestion.incremental, "near_duplicate_groups", lambda s, t: groupings.append(t) or real(s, t))
    pipeline = Pipeline(settings)
    pipeline.ingest([SEEDS])
    found = {r["source"]: r["duplicates"] for r in pipeline.sources()}
    assert sum(map(bool, found.values())) == 2 and len(groupings) == 1

    pipeline.ingest([SEEDS])  # nothing changed: the lists found before stand
    assert {r["source"]: r["duplicates"] for r in pipeline.sources()} == found and len(groupings) == 1

    loose = Pipeline(settings.replace(dup_threshold=0.01))
    loose.ingest([SEEDS])
    assert len(groupings) == 2 and sum(map(bool, (r["duplicates"] for r in loose.sources()))) > 2


def test_bad_files_are_skipped_and_nothing_indexed_is_lost(settings, corpus):
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    before = pipeline.retrieve("500% tariff on Russian oil buyers", k=1)[0]
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "image.txt").write_bytes(b"\x89PNG\x00\x00" * 100)
    (corpus / "slides.pdf").write_bytes(b"%PDF")
    (corpus / "huge.md").write_text("x " * 200_000)
    article = corpus / "002_f2e8e39dc4325990.txt"
    article.write_bytes(b"\x00\x00binary now")  # an indexed file turns bad
    report = Pipeline(settings.replace(max_file_bytes=100_000)).ingest([corpus])
    reasons = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in report.skipped}
    assert reasons["empty.txt"] == "file is empty"
    assert "binary" in reasons["image.txt"] and "binary" in reasons["002_f2e8e39dc4325990.txt"]
    assert "unsupported file type '.pdf'" in reasons["slides.pdf"]
    assert "limit" in reasons["huge.md"]
    assert report.documents == 2 and report.removed == 0
    assert pipeline.retrieve("500% tariff on Russian oil buyers", k=1)[0].id == before.id


def test_another_embedding_model_is_refused_with_both_names(settings, corpus):
    Pipeline(settings).ingest([corpus])
    from vectorstore import open_store

    with pytest.raises(StoreMismatch) as excinfo:
        open_store(settings, "openai:text-embedding-3-small", 1536)
    message = str(excinfo.value)
    assert "local:all-MiniLM-L6-v2" in message and "openai:text-embedding-3-small" in message
    assert "rag ingest --rebuild" in message


def test_passage_precision_is_the_indexs_own(settings, corpus):
    """An index made with int8 passage vectors records it, and a later ingest that names no precision
    embeds as the index did (as a collection keeps its model). One that names the other precision is
    refused with nothing changed, while reading works at any setting; `--rebuild` at the named precision
    makes the index again at it."""
    pipeline = Pipeline(settings.replace(passage_precision="int8"))
    pipeline.ingest([corpus])
    assert pipeline.searcher._store.passage_precision == "int8"
    before = [p.id for p in pipeline.retrieve("Tomahawk missiles", k=3)]
    float32 = settings.replace(passage_precision="float32")
    (corpus / "new.txt").write_text("A new article about Tomahawk missiles and the Budapest summit.\n")
    with pytest.raises(StoreMismatch, match="the index stores int8 passage vectors but passage_precision is "
                                            "float32; rebuild it with `rag ingest --rebuild` "
                                            r"\(or set RAG_PASSAGE_PRECISION=int8\)"):
        Pipeline(float32).ingest([corpus])
    reader = Pipeline(float32)
    assert [p.id for p in reader.retrieve("Tomahawk missiles", k=3)] == before
    assert "new.txt" not in {Path(s["source"]).name for s in reader.sources()}

    from rag.embedding.models import get_embedder

    unnamed = Pipeline(settings)  # no precision named: the index's own
    assert unnamed.ingest([corpus]).embedded_chunks >= 1
    new_chunk = next(p for p in unnamed.retrieve("new article Tomahawk Budapest summit", k=5)
                     if Path(p.source).name == "new.txt")
    stored = unnamed.searcher._store.collection.get(ids=[new_chunk.id], include=["embeddings"])["embeddings"][0]
    int8_vector = get_embedder(settings.replace(passage_precision="int8")).get_text_embedding_batch([new_chunk.text])[0]
    assert abs(float(np.dot(stored, int8_vector)) - 1.0) < 1e-5  # embedded by the int8 graph, as the index was
    assert unnamed.searcher._store.passage_precision == "int8"

    rebuilt = Pipeline(float32)
    rebuilt.ingest([corpus], rebuild=True)
    assert rebuilt.searcher._store.passage_precision == "float32"
    assert "new.txt" in {Path(s["source"]).name for s in rebuilt.sources()}


def test_collection_records_model_dimension_and_chunker(settings, corpus):
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    contract = pipeline.searcher._store.contract
    assert contract["embed_model"] == "local:all-MiniLM-L6-v2"
    assert contract["embed_dim"] == 384
    assert contract["chunker"] == settings.chunker_id


def test_hnsw_index_is_written_every_100_records_even_in_an_older_collection(settings, corpus):
    """Readers replay whatever Chroma has not yet written to its HNSW files (up to `sync_threshold` records,
    1,000 by Chroma's default: 0.24 s of a cold question at 10k chunks); a collection made with that
    default is switched to ours by the next ingest."""
    from vectorstore.chroma import HNSW_SYNC_THRESHOLD

    def threshold() -> int:  # as a fresh reader finds it
        store = Pipeline(settings).searcher.store
        return store.client.get_collection(settings.collection).configuration_json["hnsw"]["sync_threshold"]

    Pipeline(settings).ingest([corpus])
    assert threshold() == HNSW_SYNC_THRESHOLD == 100
    # As a collection made by the last version:
    Pipeline(settings).searcher.store.collection.modify(configuration={"hnsw": {"sync_threshold": 1000}})
    assert threshold() == 1000
    Pipeline(settings).ingest([corpus])
    assert threshold() == 100


def test_a_second_concurrent_ingest_fails_fast(settings, corpus):
    settings.data_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock; "
         f"l = FileLock({str(settings.data_dir / 'ingest.lock')!r}); l.acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(StoreBusy, match="another ingest is running"):
            Pipeline(settings).ingest([corpus])
    finally:
        holder.kill()
        holder.wait()
    assert Pipeline(settings).ingest([corpus]).documents == 2  # the lock died with its holder


def test_rebuild_starts_over(settings, corpus):
    pipeline = Pipeline(settings)
    first = pipeline.ingest([corpus])
    rebuilt = pipeline.ingest([corpus], rebuild=True)
    assert rebuilt.embedded_chunks == first.chunks == rebuilt.chunks


def test_missing_path_is_reported(settings, tmp_path):
    report = Pipeline(settings).ingest([tmp_path / "nope"])
    assert report.skipped == [{"path": str(tmp_path / "nope"), "reason": "not found"}]


def test_openai_embeddings_by_configuration(settings, corpus, llm_server):
    # The loopback stub stands in for OpenAI's embeddings endpoint (a fake: no network here).
    remote = settings.replace(embed_model="openai:text-embedding-3-small", openai_api_key="sk-test-not-real",
                              openai_base_url=llm_server.base_url)
    pipeline = Pipeline(remote)
    report = pipeline.ingest([corpus])
    assert report.embedded_chunks == report.chunks > 0
    assert pipeline.searcher._store.contract["embed_dim"] == 1536
    assert "Tomahawk" in pipeline.retrieve("Tomahawk missiles", k=1)[0].text
    with pytest.raises(StoreMismatch, match="'openai:text-embedding-3-small' but the current setting is "
                                            "'local:all-MiniLM-L6-v2'"):
        Pipeline(settings).retrieve("Tomahawk")


def test_readers_parse_the_manifest_once_per_version(tmp_path):
    from rag.ingestion.manifest import Manifest

    written = Manifest(tmp_path)
    written.documents["/a.txt"] = {"source": "a.txt", "content_hash": "1"}
    written.save()
    first = Manifest.read(tmp_path)
    assert Manifest.read(tmp_path) is first and set(first.documents) == {"/a.txt"}
    written.documents["/b.txt"] = {"source": "b.txt", "content_hash": "2"}
    written.save()  # a new file (replaced atomically): readers see it at once
    assert set(Manifest.read(tmp_path).documents) == {"/a.txt", "/b.txt"}


def test_questions_read_the_small_search_view_and_never_a_view_of_another_manifest(tmp_path, monkeypatch):
    import os

    from rag.ingestion.manifest import SEARCH_VIEW, Manifest, SearchView

    written = Manifest(tmp_path)
    written.documents["/a.txt"] = {"source": "a.txt", "content_hash": "1", "date": "2025-10-22",
                                   "duplicates": ["b.txt"], "signature": "x" * 700}
    written.documents["/b.txt"] = {"source": "b.txt", "content_hash": "2", "date": None,
                                   "duplicates": ["a.txt"], "signature": "y" * 700}
    written.save()
    expected = SearchView(2, {"a.txt": "2025-10-22"}, {"a.txt": ["b.txt"], "b.txt": ["a.txt"]})
    parsed: list[Path] = []
    monkeypatch.setattr(Manifest, "__init__", lambda self, data_dir, **kw: parsed.append(data_dir))
    assert Manifest.search_view(tmp_path) == expected and parsed == []  # the manifest itself was not parsed
    monkeypatch.undo()

    # A save that dies between writing the view and moving the manifest into place: the new view must
    # not be taken for the old manifest's.
    written.documents["/c.txt"] = {"source": "c.txt", "content_hash": "3", "date": "2025-10-23"}
    real_replace = os.replace

    def dies_before_the_manifest(source, target):
        if Path(target).name != SEARCH_VIEW:
            raise OSError("killed")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", dies_before_the_manifest)
    with pytest.raises(OSError):
        written.save()
    monkeypatch.undo()
    assert Manifest.search_view(tmp_path) == expected
    (tmp_path / SEARCH_VIEW).write_text("{not json")  # damaged or missing: the manifest answers
    assert Manifest.search_view(tmp_path) == expected
    (tmp_path / SEARCH_VIEW).unlink()
    assert Manifest.search_view(tmp_path) == expected
    written.forget()
    assert Manifest.search_view(tmp_path) == SearchView() and not (tmp_path / SEARCH_VIEW).exists()


def test_embedding_cache_embeds_each_distinct_text_once_and_drops_the_least_recently_used():
    from rag import Settings
    from rag.embedding.models import get_embedder
    from rag.ingestion.incremental import EmbeddingCache

    model = get_embedder(Settings())
    seen: list[str] = []

    class Counting:  # the real model, with a record of what it was asked to embed
        def embed_batch(self, texts):
            seen.extend(texts)
            return model.embed_batch(texts)

    cache = EmbeddingCache(capacity=2)
    first = cache.embed(Counting(), ["tariffs rose", "the summit was off", "tariffs rose"])
    assert seen == ["tariffs rose", "the summit was off"]
    assert first[0] == first[2] == pytest.approx(model.embed_batch(["tariffs rose"])[0], abs=1e-6)
    cache.embed(Counting(), ["the summit was off", "envoys met"])  # "tariffs rose" is now the oldest: dropped
    cache.embed(Counting(), ["envoys met", "tariffs rose"])
    assert seen[2:] == ["envoys met", "tariffs rose"]
    assert (cache.hits, cache.misses) == (3, 4)  # the repeat within the first call is a hit


def test_ingest_embeds_text_repeated_across_batches_once(settings, tmp_path, monkeypatch):
    """Two versions of one report share most sentences; in batches of two chunks they are far apart."""
    import shutil

    import rag.ingestion.incremental
    from rag.ingestion import sentence_store

    corpus = tmp_path / "versions"
    corpus.mkdir()
    for name in ("000_c7ab87e678e88968.txt", "001_9a746d18b83cd2b7.txt"):
        shutil.copy(SEEDS / name, corpus / name)
    embedded: list[str] = []
    real = rag.ingestion.incremental._embed_batch

    def counting(embedder, texts):
        embedded.extend(texts)
        return real(embedder, texts)

    monkeypatch.setattr(rag.ingestion.incremental, "EMBED_BATCH", 2)
    monkeypatch.setattr(rag.ingestion.incremental, "FIRST_BATCH", 2)
    monkeypatch.setattr(rag.ingestion.incremental, "_embed_batch", counting)
    pipeline = Pipeline(settings.replace(corpus_dir=corpus))
    report = pipeline.ingest()
    assert report.embedded_chunks > 4
    assert len(embedded) == len(set(embedded))
    _, texts, metas = pipeline.searcher.store.all_chunks()
    sentences = [s.text for t, m in zip(texts, metas) for s in sentence_store.spans_of(t, int(m["start"]))]
    assert len(sentences) > len(set(sentences))  # the versions do repeat sentences
    assert set(embedded) == set(texts) | set(sentences)
    assert "Budapest" in pipeline.retrieve("Why was the Budapest summit cancelled?", k=1)[0].text


def test_an_ingest_leaves_a_search_view_that_says_what_its_manifest_says(seeded):
    from rag.ingestion.manifest import SEARCH_VIEW, Manifest, SearchView

    data_dir = seeded.settings.data_dir
    view = Manifest.search_view(data_dir)
    assert (data_dir / SEARCH_VIEW).exists() and view.duplicates  # the seeds hold two versions of one report
    assert view == SearchView.of(Manifest.read(data_dir).documents.values())


def test_keyword_index_reads_and_tokenizes_only_new_chunks_and_equals_a_fresh_build(settings, corpus, monkeypatch):
    """The keyword index keeps its chunks' tokens beside it: an ingest that adds a document reads and
    tokenizes only that document's chunks, and the result searches exactly as one built from scratch."""
    import shutil

    from rag.retrieval.keyword import ChunkTokens, KeywordIndex
    from vectorstore.chroma import ChunkStore

    pipeline = Pipeline(settings)
    first = pipeline.ingest([corpus])
    shutil.copy(SEEDS / "003_0ea4331d0d193fdf.txt", corpus / "003_0ea4331d0d193fdf.txt")
    read: list[list[str]] = []
    tokenized: list[list[str]] = []
    real_get, real_add = ChunkStore.get, ChunkTokens.add
    monkeypatch.setattr(ChunkStore, "get", lambda self, ids, keys=None: read.append(list(ids)) or real_get(self, ids, keys))
    monkeypatch.setattr(ChunkStore, "all_chunks", lambda *a, **k: pytest.fail("the whole collection was read"))
    monkeypatch.setattr(ChunkTokens, "add", lambda self, ids, texts: tokenized.append(list(ids)) or real_add(self, ids, texts))
    added = pipeline.ingest([corpus])
    assert added.added == 1 and added.chunks == first.chunks + added.embedded_chunks
    store = pipeline.searcher.store
    new_ids = {i for i, (_, meta) in real_get(store, store.all_ids(), ["source"]).items()
               if meta["source"].endswith("003_0ea4331d0d193fdf.txt")}
    assert [set(r) for r in read] == [new_ids] and [set(t) for t in tokenized] == [new_ids]

    (corpus / "002_f2e8e39dc4325990.txt").unlink()  # and a removal: nothing read, nothing tokenized
    read.clear()
    tokenized.clear()
    assert pipeline.ingest([corpus]).removed == 1
    assert read == [] and tokenized in ([], [[]])

    monkeypatch.undo()
    saved = KeywordIndex.load(settings.data_dir / "keyword")
    fresh = KeywordIndex.from_records(*pipeline.searcher.store.all_chunks(KeywordIndex.RECORD_FIELDS))
    assert saved.ids == fresh.ids and saved.chunks == fresh.chunks
    for query in ("Budapest summit cancelled", "oil sanctions Rosneft Lukoil", "Trump Putin phone call"):
        got, want = saved.search_both(query, 10, 10), fresh.search_both(query, 10, 10)
        for mine, theirs in zip(got, want):
            assert [i for i, _ in mine] == [i for i, _ in theirs]
            assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], rel=1e-5)


def test_lost_or_stale_keyword_tokens_are_made_again_from_the_store(settings, corpus):
    import json
    import shutil

    from rag.retrieval.keyword import ChunkTokens, KeywordIndex

    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    directory = settings.data_dir / "keyword"
    want = KeywordIndex.load(directory).search_both("Budapest summit", 5, 5)
    vocab = json.loads((directory / "token_vocab.json").read_text())
    (directory / "token_vocab.json").write_text(json.dumps({**vocab, "tokenizer": "another bm25s"}))
    assert ChunkTokens.load(directory, KeywordIndex.load(directory).ids).arrays == {}  # not mixed with fresh ones
    (directory / "tokens.npy").write_bytes(b"garbage")
    shutil.copy(SEEDS / "003_0ea4331d0d193fdf.txt", corpus / "003_0ea4331d0d193fdf.txt")
    pipeline.ingest([corpus])
    (corpus / "003_0ea4331d0d193fdf.txt").unlink()
    pipeline.ingest([corpus])
    again = KeywordIndex.load(directory)
    assert again.search_both("Budapest summit", 5, 5) == want
    assert set(ChunkTokens.load(directory, again.ids).arrays) == set(again.ids)


def test_an_ingest_that_adds_a_document_regroups_only_it(settings, monkeypatch):
    """Near-duplicate groups of a large index are updated for the documents an ingest changes, not made
    again for all; the result is what grouping them all gives."""
    import shutil

    import rag.ingestion.incremental

    corpus = settings.corpus_dir
    corpus.mkdir(parents=True)
    for name in ("000_c7ab87e678e88968.txt", "002_f2e8e39dc4325990.txt", "003_0ea4331d0d193fdf.txt",
                 "004_936fb12f57722203.txt"):
        shutil.copy(SEEDS / name, corpus / name)
    monkeypatch.setattr(rag.ingestion.incremental, "REGROUP_SHARE", 1.0)  # (a corpus of five: any change is a large share)
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    assert not any(r["duplicates"] for r in pipeline.sources())
    monkeypatch.setattr(rag.ingestion.incremental, "near_duplicate_groups", lambda *a: pytest.fail("every document grouped again"))
    shutil.copy(SEEDS / "001_9a746d18b83cd2b7.txt", corpus / "001_9a746d18b83cd2b7.txt")  # 000's other version
    pipeline.ingest([corpus])
    found = {Path(r["source"]).name: [Path(d).name for d in r["duplicates"]] for r in pipeline.sources()}
    assert found["001_9a746d18b83cd2b7.txt"] == ["000_c7ab87e678e88968.txt"]
    assert found["000_c7ab87e678e88968.txt"] == ["001_9a746d18b83cd2b7.txt"]
    (corpus / "000_c7ab87e678e88968.txt").unlink()
    pipeline.ingest([corpus])
    assert not any(r["duplicates"] for r in pipeline.sources())


def test_an_ingest_that_changes_nothing_rewrites_and_publishes_nothing_unless_a_publish_was_lost(settings, corpus):
    """Servers reload when an ingest publishes: one that changed nothing leaves the manifest and the
    publication as they were. If the last run stopped before it published, the next one still does."""
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    store = pipeline.searcher.store
    manifest = settings.data_dir / "manifest.json"
    published, generation = store.publication()
    written = manifest.stat().st_mtime_ns
    again = pipeline.ingest([corpus])
    assert again.unchanged == 2 and store.publication() == (published, generation)
    assert manifest.stat().st_mtime_ns == written

    store.publish("a digest from a run that stopped halfway")  # as if the last publish never happened
    pipeline.ingest([corpus])
    assert store.publication()[0] == published and store.publication()[1] != generation


def _aged(*paths: Path) -> None:
    """Set the files' mtime an hour back: a file changed within two seconds of an ingest is read again
    by the next one whatever its stat says (coarse file-system clocks)."""
    import os
    import time

    for path in paths:
        os.utime(path, (time.time() - 3600, time.time() - 3600))


@pytest.fixture
def reads(monkeypatch):
    """The files the ingest reads, in order."""
    import rag.ingestion.documents as documents

    seen: list[str] = []
    real = documents.read_text

    def counted(path, max_bytes):
        seen.append(Path(path).name)
        return real(path, max_bytes)

    monkeypatch.setattr(documents, "read_text", counted)
    return seen


def test_a_reingest_reads_only_the_files_changed_since_the_last_one(settings, corpus, reads):
    files = sorted(corpus.iterdir())
    _aged(*files)
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])
    reads.clear()
    again = pipeline.ingest([corpus])
    assert reads == [] and (again.unchanged, again.updated, again.embedded_chunks) == (2, 0, 0)
    files[0].write_text("A correction was added to the top of this article on Friday, the editors said.\n\n"
                        + files[0].read_text())
    _aged(files[0])
    edited = pipeline.ingest([corpus])
    assert reads == [files[0].name] and (edited.unchanged, edited.updated) == (1, 1)
    assert "correction was added" in pipeline.retrieve("Which correction did the editors add on Friday?", 1)[0].text


def test_a_file_changed_just_before_an_ingest_is_read_again_by_the_next(settings, corpus, reads):
    pipeline = Pipeline(settings)
    pipeline.ingest([corpus])  # the fixture's files were written a moment ago
    reads.clear()
    assert pipeline.ingest([corpus]).embedded_chunks == 0 and len(reads) == 2


def test_an_unread_file_is_read_again_when_a_new_article_makes_its_lines_chrome(settings, tmp_path, reads):
    site = tmp_path / "site"
    site.mkdir()
    chrome = "Harbour Ledger Markets Desk\n\n"
    (site / "a.txt").write_text(chrome + "Port volumes fell by two percent in March as container traffic slowed.\n")
    _aged(site / "a.txt")
    pipeline = Pipeline(settings)
    pipeline.ingest([site])
    assert "Harbour Ledger" in pipeline.retrieve("port volumes in March", 1)[0].text  # alone: not chrome
    (site / "b.txt").write_text(chrome + "The harbour authority approved a new berth for bulk carriers.\n")
    _aged(site / "b.txt")
    reads.clear()
    report = pipeline.ingest([site])
    assert sorted(reads) == ["a.txt", "b.txt"] and (report.added, report.updated) == (1, 1)
    assert pipeline.retrieve("port volumes in March", 1)[0].text.startswith("Port volumes fell")
