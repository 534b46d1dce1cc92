"""`python -m rag.evaluation.retrieval_study` on a small benchmark of its own layout (corpus/ + gold.jsonl):
every ranking it scores is computed, and a claim that names its document scores where it should."""

from __future__ import annotations

import json

import pytest

from rag import Settings
from rag.evaluation import retrieval_study

DOCUMENTS = {
    "1.txt": "Vitamin D and bone density\n\nVitamin D supplements raised bone mineral density in older women "
             "over two years. Falls were fewer in the treated group.",
    "2.txt": "Statins after stroke\n\nStatin therapy after ischaemic stroke lowered the rate of a second stroke. "
             "Muscle pain was the most common side effect.",
    "3.txt": "Sleep and memory\n\nStudents who slept eight hours recalled more word pairs than those kept awake. "
             "The effect held a week later.",
    "4.txt": "Coffee and heart rhythm\n\nModerate coffee drinking was not linked to atrial fibrillation in a "
             "cohort of 200,000 adults.",
}
CLAIMS = [("c1", "Vitamin D supplements increase bone density in older women.", "1.txt"),  # c1, c2, c5: one half; c3: the other
          ("c2", "Statins reduce the risk of a second stroke.", "2.txt"),
          ("c3", "Sleep improves the recall of word pairs.", "3.txt"),
          ("c5", "Sleeping eight hours helps students remember word pairs a week later.", "3.txt")]  # c3's document


@pytest.fixture
def bench(tmp_path):
    (tmp_path / "corpus").mkdir()
    for name, text in DOCUMENTS.items():
        (tmp_path / "corpus" / name).write_text(text)
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps({"id": i, "question": q, "sources": [s]}) + "\n"
                                                 for i, q, s in CLAIMS))
    return tmp_path


def test_the_study_scores_every_ranking_and_finds_the_named_documents(bench, tmp_path, monkeypatch):
    saved = tmp_path / "vectors.npz"
    runs = retrieval_study.collect(bench, Settings(), saved=saved, title_field=True, sentences=True,
                                   phrases=True, document_heads=True, adapter=True)
    assert len(runs) == len(CLAIMS)
    # c1, c2 and c5 are held out; c3, the one tuning claim, cites c5's document, so c5 is not fresh
    assert [run["tune"] for run in runs] == [False, False, True, False]
    assert [run["fresh"] for run in runs] == [True, True, False, False]
    for run, (_, _, source) in zip(runs, CLAIMS):
        assert run["relevant"] == {source}
        for key in ("dense", "bm25", "bm25_documents", "dense_documents", "bm25_titles", "sentences", "title_dense",
                    "bm25_pairs", "bm25_pieces", "dense_heads",
                    *(f"dense_adapted_{strength}" for strength in retrieval_study.ADAPTER_STRENGTHS)):
            assert retrieval_study.distinct(run[key])[0] == source, key
    rows = {name: values for name, *values in retrieval_study.study(runs)}
    assert any(name.startswith("rag.retrieval.search + ") and "sentences" in name for name in rows)
    for variant in ("BM25 again with", "z-score fusion", "chunks as the mean of their sentences", "x bm25_pairs",
                    "x bm25_pieces", "x dense_heads", "question adapter", "with the adapted question"):
        assert any(variant in name for name in rows), variant
    assert rows["dense, chunks as the mean of their sentences"] == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert all(0.0 <= value <= 1.0 for values in rows.values() for value in values)
    assert rows["dense (MiniLM)"] == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert saved.exists() and saved.with_suffix(".sentences.npz").exists() and saved.with_suffix(".heads.npz").exists()

    def embedding_forbidden(*args, **kwargs):
        raise AssertionError("a second run embeds nothing: the saved vectors are reused")

    from rag.embedding.onnx_model import OnnxSentenceEmbedding

    monkeypatch.setattr(OnnxSentenceEmbedding, "embed_batch", embedding_forbidden)
    repeated = retrieval_study.collect(bench, Settings(), saved=saved, sentences=True, document_heads=True)
    assert [r["sentences"] for r in repeated] == [r["sentences"] for r in runs]
    assert [r["dense_heads"] for r in repeated] == [r["dense_heads"] for r in runs]


def test_the_question_adapter_learns_its_questions_and_its_penalty_holds_it_at_the_identity():
    import numpy as np

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((60, 16)).astype(np.float32)
    queries = rng.standard_normal((12, 16)).astype(np.float32)
    relevant = np.zeros((12, 60), dtype=bool)
    relevant[np.arange(12), np.arange(12)] = True  # question i asks for chunk i

    def found(weights: np.ndarray) -> int:
        scores = (queries @ weights) @ (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).T  # cosine ranking
        return int((scores.argmax(axis=1) == np.arange(12)).sum())

    free = retrieval_study.query_adapter(queries, vectors, relevant, strength=0.0, steps=200)
    held = retrieval_study.query_adapter(queries, vectors, relevant, strength=1e4, steps=200)
    assert found(free) > found(np.eye(16, dtype=np.float32))
    assert np.abs(held - np.eye(16)).max() < 0.01
