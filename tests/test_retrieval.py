"""Hybrid retrieval over the five seeds."""

import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore

from rag.retrieval.keyword import ChunkDocuments, KeywordIndex, ids_digest

# (question, the seed that must be among the top 3 passages' sources)
QUESTIONS = [
    ("Why was the Budapest summit cancelled?", "003"),
    ("Which Russian oil companies were blacklisted?", "000"),
    ("What did Rubio call Putin?", "000"),
    ("What did Liana Fix say about the Alaska meeting?", "000"),
    ("What tariff does the Senate sanctions bill propose?", "002"),
    ("When were the first direct talks between Ukraine and Russia in Istanbul?", "002"),
    ("What did Rubio say at the NATO summit about crushing Russia with sanctions?", "002"),
    ("How long was Trump's phone call with Putin?", "003"),
    ("What did Trump say about Vladimir during his meeting with Mark Rutte?", "003"),
    ("Did Trump decide to give Tomahawk missiles to Ukraine?", "004"),
    ("What did Lavrov say at his press conference in Moscow?", "004"),
    ("What did the Kremlin say about postponing the summit?", "004"),
]


@pytest.mark.parametrize("question, seed", QUESTIONS)
def test_finds_the_right_article(seeded, question, seed):
    passages = seeded.retrieve(question, k=3)
    sources = {p.source.rsplit("/", 1)[-1][:3] for p in passages} | {
        s.rsplit("/", 1)[-1][:3] for p in passages for s in p.also_in}
    assert seed in sources, [p.source for p in passages]


def test_is_a_llamaindex_retriever(seeded):
    retriever = seeded.as_retriever()
    assert isinstance(retriever, BaseRetriever)
    hits = retriever.retrieve("Rosneft and Lukoil sanctions")
    assert hits and all(isinstance(h, NodeWithScore) for h in hits)
    assert len(hits) == retriever.k
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    node = hits[0].node
    assert node.metadata["source"].endswith(".txt")
    assert (node.start_char_idx, node.end_char_idx) == (node.metadata["start"], node.metadata["end"])


def test_duplicate_passages_collapse_into_one_with_also_in(seeded):
    passages = seeded.retrieve("Liana Fix senior researcher Council on Foreign Relations Alaska", k=5)
    fix = [p for p in passages if "Liana Fix" in p.text]
    assert len(fix) == 1, [p.source for p in fix]
    names = {fix[0].source.rsplit("/", 1)[-1], *(s.rsplit("/", 1)[-1] for s in fix[0].also_in)}
    assert names == {"000_c7ab87e678e88968.txt", "001_9a746d18b83cd2b7.txt"}


def test_scores_and_offsets_are_exposed(seeded):
    p = seeded.retrieve("Tomahawk missiles", k=2)[0]
    assert p.score > 0 and (p.dense_score is not None or p.keyword_score is not None)
    assert seeded.document_text(p.source)[p.start:p.end] == p.text


def test_keyword_index_is_persisted_not_rebuilt_per_query(seeded, monkeypatch):
    assert (seeded.settings.data_dir / "keyword" / "ids.json").exists()
    monkeypatch.setattr(KeywordIndex, "build", lambda *a, **k: pytest.fail("rebuilt at query time"))
    assert seeded.retrieve("Lukoil", k=1)[0].keyword_score > 0


def test_k_is_configurable(seeded):
    assert len(seeded.retrieve("sanctions", k=2)) == 2
    assert len(seeded.retrieve("sanctions", k=7)) == 7


def test_answering_imports_neither_llamaindex_nor_torch(seeded):
    """A cold `rag ask` must not pay for LlamaIndex (~1 s) or torch: the search and the answerer are plain
    Python over Chroma, bm25s and ONNX Runtime; LlamaIndex loads only for `as_retriever()`."""
    import subprocess
    import sys

    script = ("import sys; from rag import Pipeline, Settings; "
              f"p = Pipeline(Settings(data_dir={str(seeded.settings.data_dir)!r})); "
              "a = p.ask('Why was the Budapest summit cancelled?'); assert a.citations, a.answer; "
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'llama_index', 'torch', 'transformers'}))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_chunk_is_lifted_by_its_whole_document_matching_the_question():
    """Two chunks equal on their own; the one whose article mentions the question's other terms elsewhere
    (in another chunk) ranks first, through the document-level BM25 index."""
    from rag.retrieval.search import fuse

    ids = ["a1", "a2", "b1", "b2", "c1"]
    texts = ["The summit in Budapest was called off.", "Officials blamed the stalled ceasefire talks.",
             "The summit in Budapest was called off.", "Weather delayed flights across Europe.",
             "Markets rose on Tuesday."]
    index = KeywordIndex.build(ids, texts, ["a", "a", "b", "b", "c"])
    chunks, documents = index.search_both("Budapest summit ceasefire talks", 5, 5)
    assert [name for name, _ in documents][0] == "a"
    fused = fuse([("a1", 0.6), ("b1", 0.6)], [c for c in chunks if c[0] in ("a1", "b1")], documents, index.chunks)
    assert fused["a1"] > fused["b1"]
    assert fuse([], [], [], {}) == {}
    lonely = fuse([("x", -0.1), ("y", -0.2)], [], [], {})  # nothing similar, no keyword hit: still ranked
    assert sorted(lonely, key=lambda c: -lonely[c]) == ["x", "y"]


def test_weighted_query_words_scale_each_words_bm25_score():
    """search_words with word -> weight (an expanded query) sums each word's BM25 score times its weight; a
    list counts each occurrence once, as the query's own words do."""
    from rag.retrieval.keyword import query_words

    index = KeywordIndex.build(["x", "y", "z"], ["Lukoil sanctions", "Rosneft exports", "Rosneft Lukoil sanctions"],
                               ["one", "two", "two"])
    words = query_words("Rosneft sanctions")
    assert index.search_words(words, 3, 3) == index.search_both("Rosneft sanctions", 3, 3)
    single = {w: dict(index.search_words([w], 3, 0)[0]) for w in words}
    rosneft, sanctions = words
    weighted = dict(index.search_words({rosneft: 2.0, sanctions: 0.5}, 3, 0)[0])
    for chunk in ("x", "y", "z"):
        want = 2.0 * single[rosneft].get(chunk, 0.0) + 0.5 * single[sanctions].get(chunk, 0.0)
        assert weighted[chunk] == pytest.approx(want)
    assert dict(index.search_words({sanctions: 1.0, rosneft: 0.0}, 3, 0)[0]) == pytest.approx(single[sanctions])


def test_keyword_index_round_trip_keeps_documents(tmp_path):
    index = KeywordIndex.build(["x", "y"], ["Lukoil sanctions", "Rosneft exports"], ["one", "two"])
    index.save(tmp_path / "keyword")
    loaded = KeywordIndex.load(tmp_path / "keyword")
    assert loaded.current and loaded.chunks == {"x": "one", "y": "two"}
    assert loaded.search_both("Rosneft", 2, 2) == index.search_both("Rosneft", 2, 2)
    assert loaded.search_both("Rosneft", 2, 2)[1][0][0] == "two"
    # read from the mapped files, through plain array views (a memmap slice costs Python code per search)
    import numpy as np

    data = loaded._bm25.scores["data"]
    assert type(data) is np.ndarray and isinstance(data.base, np.memmap)


def test_an_index_of_format_2_is_read_as_it_is(tmp_path):
    """Format 2 kept the chunk ids and their documents in ids.json; such an index is read, not rebuilt."""
    import json

    index = KeywordIndex.build(["x", "y", "z"], ["Lukoil sanctions", "Rosneft exports", "Rosneft Lukoil"],
                               ["one", "two", "two"])
    index.save(tmp_path / "keyword")
    meta_file = tmp_path / "keyword" / "ids.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "format": 2, "ids": index.ids, "sources": index.sources}))
    for name in ChunkDocuments.FILES:
        (tmp_path / "keyword" / name).unlink()
    loaded = KeywordIndex.load(tmp_path / "keyword")
    assert loaded.current and loaded.chunks == {"x": "one", "y": "two", "z": "two"}
    assert loaded.search_both("Rosneft", 3, 3) == index.search_both("Rosneft", 3, 3)


def test_the_next_ingest_writes_an_index_of_format_2_anew(tmp_path):
    import json

    from rag import Pipeline, Settings
    from rag.config import PROJECT_DIR

    seed = PROJECT_DIR / "seeds" / "004_936fb12f57722203.txt"
    settings = Settings(data_dir=tmp_path / "data", corpus_dir=PROJECT_DIR / "seeds")
    Pipeline(settings).ingest(paths=[seed])
    directory = settings.data_dir / "keyword"
    index = KeywordIndex.load(directory)
    meta = json.loads((directory / "ids.json").read_text())
    (directory / "ids.json").write_text(json.dumps({**meta, "format": 2, "ids": index.ids, "sources": index.sources}))
    for name in ChunkDocuments.FILES:
        (directory / name).unlink()
    assert KeywordIndex.load(directory).saved_format == 2
    Pipeline(settings).ingest(paths=[seed])  # nothing new to embed; the index is written in this version's format
    again = KeywordIndex.load(directory)
    assert again.saved_format == 3 and again.chunks == index.chunks and again.digest == index.digest


def test_chunk_documents_look_up_ids_exactly():
    """Ids of any length and script: none is found by a prefix or a longer id (numpy compares byte strings
    padded with NULs: an id ending in NUL would match its prefix, and ingest's ids are hex digests)."""
    names = ["a.txt", "b.txt"]
    ids = ["zeta", "b", "ab", "Łódź-1", "abc"]
    chunks = ChunkDocuments.of(ids, ["a.txt", "b.txt", "a.txt", "b.txt", "b.txt"], names)
    assert [chunks.id_at(n) for n in range(len(ids))] == ids == chunks.ids() == list(chunks)
    assert chunks.digest() == ids_digest(ids)  # (the same digest as from the strings, "Łódź-1" included)
    assert dict(chunks) == {"zeta": "a.txt", "b": "b.txt", "ab": "a.txt", "Łódź-1": "b.txt", "abc": "b.txt"}
    for absent in ("a", "abcd", "zeta2", "", "Łódź", "Łódź-12"):
        assert absent not in chunks and chunks.get(absent) is None and chunks.position(absent) is None
    assert chunks.sources() == ["a.txt", "b.txt", "a.txt", "b.txt", "b.txt"]
    unknown = ChunkDocuments.of(ids, None, [])  # an index of format 1: ids without documents
    assert "ab" in unknown and unknown["ab"] == "" and not unknown.known and unknown.sources() is None
    assert len(ChunkDocuments.of([], [], [])) == 0 and "x" not in ChunkDocuments.of([], [], [])


def test_both_keyword_indexes_share_one_vocabulary_when_saved_alike(tmp_path):
    index = KeywordIndex.build(["x", "y"], ["Lukoil sanctions", "Rosneft exports"], ["one", "two"])
    index.save(tmp_path / "keyword")
    loaded = KeywordIndex.load(tmp_path / "keyword")
    assert loaded._documents.vocab_dict is loaded._bm25.vocab_dict
    assert loaded._documents.unique_token_ids_set is loaded._bm25.unique_token_ids_set


def test_an_index_saved_without_its_document_part_is_rebuilt_on_open(tmp_path):
    """A keyword index written by the previous version (chunks only) is not an error: the reader rebuilds
    it from the collection, once, and searches with the document part."""
    import json

    from rag import Pipeline, Settings
    from rag.config import PROJECT_DIR

    settings = Settings(data_dir=tmp_path / "data", corpus_dir=PROJECT_DIR / "seeds")
    Pipeline(settings).ingest(paths=[PROJECT_DIR / "seeds" / "004_936fb12f57722203.txt"])
    meta_file = settings.data_dir / "keyword" / "ids.json"
    saved = KeywordIndex.load(settings.data_dir / "keyword")
    meta_file.write_text(json.dumps({"digest": saved.digest, "ids": saved.ids}))  # format 1
    assert not KeywordIndex.load(settings.data_dir / "keyword").current
    assert Pipeline(settings).retrieve("Tomahawk missiles", k=1)[0].keyword_score > 0
    assert KeywordIndex.load(settings.data_dir / "keyword").current


@pytest.mark.parametrize("threads, loaded", [(0, "False False"), (1, "True True")])
def test_bm25s_skips_scipy_and_tqdm_only_in_a_single_threaded_process(threads, loaded):
    """A fresh process: alone, it imports bm25s without them (a tenth of a cold ask); with another thread
    running (which might import scipy meanwhile) it imports them as bm25s asks."""
    import subprocess
    import sys

    code = ("import sys, threading, time\n"
            f"[threading.Thread(target=time.sleep, args=(1,), daemon=True).start() for _ in range({threads})]\n"
            "from rag.retrieval.keyword import import_bm25s\nbm25s = import_bm25s()\n"
            "print('scipy' in sys.modules, 'tqdm' in sys.modules)\nimport scipy.sparse, tqdm\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == loaded  # and scipy and tqdm still import afterwards


def test_keyword_scores_equal_bm25s_own_index():
    """The keyword index computes bm25s's score matrix with array arithmetic (rag.retrieval.keyword._bm25_of): it
    must be the matrix bm25s's own `index()` builds from the same tokens, to the float."""
    import numpy as np

    import Stemmer
    from conftest import SEEDS

    from rag.retrieval.keyword import ChunkTokens, _bm25_of, _top, import_bm25s, query_words

    texts = [line for line in (SEEDS / "004_936fb12f57722203.txt").read_text().split("\n") if line.strip()]
    texts += ["", "the and of", "Sanctions sanctions SANCTIONS on oil", "oil"]  # empty, stop words only, repeats
    tokens = ChunkTokens()
    tokens.add([str(i) for i in range(len(texts))], texts)
    mine = _bm25_of([tokens.arrays[str(i)] for i in range(len(texts))], tokens.vocab)
    bm25s = import_bm25s()
    theirs = bm25s.BM25()
    theirs.index(bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                                show_progress=False), show_progress=False)
    assert set(mine.vocab_dict) == set(theirs.vocab_dict)
    for word in theirs.vocab_dict:  # same documents and scores under each word (ids may be numbered apart)
        if word == "":
            continue
        a, b = mine.vocab_dict[word], theirs.vocab_dict[word]
        got = mine.scores["indices"][mine.scores["indptr"][a]:mine.scores["indptr"][a + 1]]
        want = theirs.scores["indices"][theirs.scores["indptr"][b]:theirs.scores["indptr"][b + 1]]
        assert got.tolist() == want.tolist()
        assert np.allclose(mine.scores["data"][mine.scores["indptr"][a]:mine.scores["indptr"][a + 1]],
                           theirs.scores["data"][theirs.scores["indptr"][b]:theirs.scores["indptr"][b + 1]],
                           rtol=1e-6, atol=0)
    for query in ("oil sanctions", "Rosneft Lukoil", "Trump"):
        q = bm25s.tokenize([query], stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
        d1, s1 = mine.retrieve(q, k=5, show_progress=False)
        d2, s2 = theirs.retrieve(q, k=5, show_progress=False)
        assert d1.tolist() == d2.tolist() and np.allclose(s1, s2, rtol=1e-6)
    # and the search reads them as bm25s's `retrieve` does: every document's score (words repeated count
    # again; unknown and stop words count nothing), the best first
    for query in ("oil sanctions", "Rosneft Lukoil", "Trump", "oil oil sanctions", "Zanzibar oil", "the and of"):
        q = bm25s.tokenize([query], stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
        words = query_words(query)
        assert sorted(words) == sorted(w for w in (dict(map(reversed, q.vocab.items()))[i] for i in q.ids[0]) if w)
        got = _top(theirs, words, len(texts), str)
        if not any(w in theirs.vocab_dict for w in words):
            assert got == []
            continue
        d2, s2 = theirs.retrieve(q, k=len(texts), show_progress=False)
        want = {str(d): s for d, s in zip(d2[0].tolist(), s2[0].tolist()) if s > 0}
        assert dict(got) == pytest.approx(want, rel=1e-6)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True) and len(got) > 1


def test_a_saved_keyword_index_leaves_the_page_cache(tmp_path):
    """Readers memory-map the index, and pages still cached from its writing counted far more against a
    reader (45 against 3 MB of a cold ask at 100k chunks): `save` flushes them and drops them."""
    import os
    import shutil
    import subprocess

    fincore = shutil.which("fincore")  # util-linux: how many of a file's bytes are in the page cache
    if fincore is None or not hasattr(os, "posix_fadvise"):
        pytest.skip("needs Linux's posix_fadvise and util-linux's fincore")

    def cached(path) -> int:
        return int(subprocess.run([fincore, "--bytes", "--noheadings", "--output", "RES", str(path)],
                                  capture_output=True, text=True, check=True).stdout.strip() or 0)

    control = tmp_path / "control.bin"
    control.write_bytes(os.urandom(1 << 20))
    if cached(control) == 0:
        pytest.skip("this filesystem does not keep written pages in the page cache")
    descriptor = os.open(control, os.O_RDONLY)
    os.fsync(descriptor)
    os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(descriptor)
    if cached(control) != 0:
        pytest.skip("this filesystem's pages are its storage (tmpfs): nothing to drop")

    words = [f"term{i}" for i in range(3000)]
    texts = [" ".join(words[i::7]) for i in range(7)]
    index = KeywordIndex.build([f"c{i}" for i in range(7)], texts, ["a", "a", "b", "b", "c", "c", "d"])
    index.save(tmp_path / "keyword")
    files = [p for p in (tmp_path / "keyword").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) > 100_000
    assert {p.name: cached(p) for p in files} == {p.name: 0 for p in files}
    loaded = KeywordIndex.load(tmp_path / "keyword")
    assert loaded.search("term14 term21", 3)[0][0] == "c0"


@pytest.mark.parametrize("error, saved", [(22, True), (5, False)])  # EINVAL: not supported here; EIO: a failing disk
def test_saving_where_pages_cannot_be_dropped(tmp_path, monkeypatch, error, saved):
    """A filesystem without fsync or fadvise saves as before; a failing one fails the save and leaves the
    published index as it was."""
    import os

    if not hasattr(os, "posix_fadvise"):
        pytest.skip("needs posix_fadvise")
    KeywordIndex.build(["x"], ["Lukoil sanctions"], ["one"]).save(tmp_path / "keyword")

    def refuse(*args):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "posix_fadvise", refuse)
    new = KeywordIndex.build(["y"], ["Rosneft exports"], ["two"])
    if saved:
        new.save(tmp_path / "keyword")
    else:
        with pytest.raises(OSError):
            new.save(tmp_path / "keyword")
    assert KeywordIndex.load(tmp_path / "keyword").chunks == ({"y": "two"} if saved else {"x": "one"})
