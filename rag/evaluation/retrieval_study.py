"""What each retrieval change gains on SciFact: `python -m rag.evaluation.retrieval_study` (~10 min).

Embeds the benchmark's chunks once (chunked and cleaned as `rag ingest` does) and scores fusion
variants in memory, nDCG@10 over distinct documents (BEIR-comparable). The 809 claims are split in two
halves by a hash of their id: a variant's free parameter is chosen on the first half ("tune") and the
second half ("test") is reported beside it, so the gain of a change is read on questions it was not
chosen on; "all" is the mean over every claim, the figure the issue's target names. "fresh" is the
test claims none of whose documents a tune claim cites (245 of 419): SciFact words several claims
from one abstract, so a change that learns documents, not questions, scores on "test" and not there.
Nothing here changes the product; it measures candidates for `rag.retrieval.search`.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from rag.config import PROJECT_DIR, Settings
from rag.evaluation.metrics import ndcg
from rag.retrieval.search import (
    CANDIDATES_PER_RETRIEVER,
    CHUNK_KEYWORD_WEIGHT,
    DENSE_WEIGHT,
    DOCUMENT_KEYWORD_WEIGHT,
    fuse,
)

DEFAULT_BENCH = PROJECT_DIR.parent / "shared" / "bench" / "scifact-train"
DEPTH = 100
RRF_K = 60  # reciprocal rank fusion (Cormack et al.), what rag.retrieval.search did before score fusion
ADAPTER_STRENGTHS = (0.01, 0.1, 1.0)  # penalties of `query_adapter` tried, the one used chosen on the tune half
Ranking = list[tuple[str, float]]  # ("document#chunk" or "document", score), best first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.evaluation.retrieval_study", description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH)
    parser.add_argument("--chunk-size", type=int, default=Settings().chunk_size)
    parser.add_argument("--chunk-overlap", type=int, default=Settings().chunk_overlap)
    parser.add_argument("--titles", action="store_true",
                        help="also score chunks embedded and keyword-indexed under their document's title")
    parser.add_argument("--title-field", action="store_true",
                        help="also score each document's title on its own (embedded alone) as a document bonus")
    parser.add_argument("--sentences", action="store_true",
                        help="also score each chunk by its best sentence, as stored at ingest (embeds ~50k sentences)")
    parser.add_argument("--phrases", action="store_true",
                        help="also score BM25 over adjacent word pairs and BM25 over the model's word pieces")
    parser.add_argument("--document-heads", action="store_true",
                        help="also score each document embedded whole, as far as the model reads (embeds 5,183 texts)")
    parser.add_argument("--adapter", action="store_true",
                        help="also score a linear map of the question's vector trained on the tune half (needs torch)")
    parser.add_argument("--vectors", type=Path, metavar="FILE.npz",
                        help="keep the chunk and claim vectors here and reuse them while the chunks are the same")
    args = parser.parse_args(argv)
    runs = collect(args.bench, Settings.from_env(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap), args.titles,
                   args.vectors, args.title_field, args.sentences, args.phrases, args.document_heads, args.adapter)
    print(f"{'variant':<52} {'tune':>7} {'test':>7} {'all':>7} {'fresh':>7}   (nDCG@10, distinct documents; "
          f"chunk size {args.chunk_size}; fresh: {sum(r['fresh'] for r in runs)} test claims)")
    for name, tune, test, both, fresh in study(runs):
        print(f"{name:<52} {tune:>7.4f} {test:>7.4f} {both:>7.4f} {fresh:>7.4f}")
    return 0


def collect(bench: Path, settings: Settings, titles: bool = False, saved: Path | None = None,
            title_field: bool = False, sentences: bool = False, phrases: bool = False,
            document_heads: bool = False, adapter: bool = False) -> list[dict]:
    """Per claim: dense and BM25 chunk rankings, BM25 over whole documents, the relevant documents; a
    dense ranking of whole documents (each the normalised mean of its chunks' vectors: no model call)
    and BM25 over titles alone. With `titles`, also the dense and BM25 rankings of chunks prefixed with
    their document's title (chunks after a document's first do not contain it); with `sentences`, each
    chunk's best sentence cosine (its sentences embedded as an ingest stores them); with `phrases`, BM25
    rankings of chunks over adjacent word pairs and over the model's word pieces; with `document_heads`, a
    dense ranking of documents each embedded whole (the model reads its first 256 word pieces, as the plain
    LlamaIndex pipeline's chunks are read); with `adapter`, the dense ranking again with the questions'
    vectors mapped by `query_adapter`, trained on the tune half."""
    from rag.ingestion.documents import load_documents
    from rag.embedding.models import get_embedder
    from rag.ingestion.incremental import chunk_document
    from rag.retrieval.keyword import KeywordIndex, query_words

    docs, _ = load_documents(sorted((bench / "corpus").glob("*.txt")), settings.max_file_bytes)
    ids, texts, owner, titled = [], [], [], []
    title_of = {Path(doc.source).name: doc.title for doc in docs}
    for doc in docs:
        for chunk in chunk_document(doc, settings):
            ids.append(chunk.id)
            texts.append(chunk.text)
            owner.append(Path(doc.source).name)
            titled.append(f"{doc.title}\n\n{chunk.text}" if chunk.index and doc.title else chunk.text)
    print(f"{len(docs)} documents, {len(texts)} chunks; embedding…", file=sys.stderr)
    model = get_embedder(settings)
    if hasattr(model, "word_pieces"):  # how much of the chunks the model reads at this chunk size
        pieces = np.asarray(model.word_pieces(texts))
        unread = np.clip(pieces - model.max_length, 0, None)
        print(f"{int(pieces.sum()):,} word pieces; {int((unread > 0).sum()):,} chunks longer than the model's "
              f"{model.max_length} (longest {int(pieces.max())}), {unread.sum() / pieces.sum():.1%} of word pieces unread",
              file=sys.stderr)
    rows = [json.loads(line) for line in (bench / "gold.jsonl").read_text().splitlines() if line.strip()]
    claims = [r["question"] for r in rows]
    # (the passage precision named only when int8: saved float32 vectors stay valid)
    made_by = [settings.embed_model, settings.query_precision] + (["int8"] if settings.passage_precision == "int8" else [])
    key = hashlib.sha256(json.dumps([*made_by, texts, claims]).encode()).hexdigest()
    if saved and saved.exists() and str(np.load(saved)["key"]) == key:
        vectors, queries = np.load(saved)["vectors"], np.load(saved)["queries"]
    else:
        vectors = np.asarray(model.get_text_embedding_batch(texts), dtype=np.float32)
        # as the product embeds a question (on the local model: int8 unless RAG_QUERY_PRECISION=float32)
        ask = getattr(model, "embed_queries", None) or (lambda texts: [model.get_query_embedding(t) for t in texts])
        queries = np.asarray(ask(claims), dtype=np.float32)
        if saved:
            np.savez(saved, key=key, vectors=vectors, queries=queries)
    keyword = KeywordIndex.build(ids, texts, owner)
    chunk_words = {f"{o}#{i}": Counter(query_words(t)) for i, t, o in zip(ids, texts, owner)}  # for feedback
    titled_vectors, titled_keyword = None, None
    if titles:
        changed = [j for j, (a, b) in enumerate(zip(texts, titled)) if a != b]
        print(f"embedding {len(changed)} chunks again under their title…", file=sys.stderr)
        titled_vectors = vectors.copy()
        titled_vectors[changed] = np.asarray(model.get_text_embedding_batch([titled[j] for j in changed]),
                                             dtype=np.float32)
        titled_keyword = KeywordIndex.build(ids, titled, owner)
    where = {i: n for i, n in zip(ids, owner)}
    names = sorted(title_of)
    position = {n: j for j, n in enumerate(names)}
    document_vectors = np.zeros((len(names), vectors.shape[1]), dtype=np.float32)
    np.add.at(document_vectors, [position[n] for n in owner], vectors)
    document_vectors /= np.clip(np.linalg.norm(document_vectors, axis=1, keepdims=True), 1e-12, None)
    title_keyword = KeywordIndex.build(names, [title_of[n] or n for n in names], names)
    sentence_best, sentence_mean = _sentence_scorer(texts, model, saved, settings.passage_precision or "float32") if sentences else (None, None)
    if title_field:
        title_file = saved.with_suffix(".titles.npz") if saved else None
        if title_file and title_file.exists() and list(np.load(title_file)["names"]) == names:
            title_vectors = np.load(title_file)["vectors"]
        else:
            title_vectors = np.asarray(model.get_text_embedding_batch([title_of[n] or n for n in names]),
                                       dtype=np.float32)
            if title_file:
                np.savez(title_file, names=np.asarray(names), vectors=title_vectors)

    heads = _document_heads(docs, names, model, saved) if document_heads else None
    tune_half = np.array([hashlib.sha256(r["id"].encode()).digest()[0] < 128 for r in rows])
    mapped = None
    if adapter:
        relevant = np.array([[o in r["sources"] for o in owner] for r in rows])
        mapped = {strength: queries @ query_adapter(queries[tune_half], vectors, relevant[tune_half], strength)
                  for strength in ADAPTER_STRENGTHS}

    def dense(matrix: np.ndarray, query: np.ndarray) -> Ranking:
        scores = matrix @ query
        return [(f"{owner[j]}#{ids[j]}", float(scores[j])) for j in np.argsort(-scores)[:DEPTH]]

    phrase_rankers = _phrase_rankers(texts, model) if phrases else {}
    runs = []
    for number, (row, query) in enumerate(zip(rows, queries)):
        chunk_hits, document_hits = keyword.search_both(row["question"], DEPTH, DEPTH)
        run = {"tune": bool(tune_half[number]),
               "relevant": set(row["sources"]),
               "dense": dense(vectors, query),
               "bm25": [(f"{where[i]}#{i}", s) for i, s in chunk_hits],
               "bm25_documents": document_hits,
               "keyword": keyword, "chunk_words": chunk_words, "question_words": query_words(row["question"])}
        similarity = document_vectors @ query
        run["dense_documents"] = [(names[j], float(similarity[j])) for j in np.argsort(-similarity)[:DEPTH]]
        run["bm25_titles"] = title_keyword.search(row["question"], DEPTH)
        if sentence_best is not None:
            best = sentence_best(query)
            run["sentences"] = [(f"{owner[j]}#{ids[j]}", float(best[j])) for j in np.argsort(-best)[:DEPTH]]
            run["dense_sentence_mean"] = dense(sentence_mean, query)
        if title_field:
            similarity = title_vectors @ query
            run["title_dense"] = [(names[j], float(similarity[j])) for j in np.argsort(-similarity)[:DEPTH]]
        for key, rank in phrase_rankers.items():
            run[key] = [(f"{owner[j]}#{ids[j]}", s) for j, s in rank(row["question"])]
        if heads is not None:
            similarity = heads @ query
            run["dense_heads"] = [(names[j], float(similarity[j])) for j in np.argsort(-similarity)[:DEPTH]]
        for strength, questions in (mapped or {}).items():
            moved = questions[number] / max(float(np.linalg.norm(questions[number])), 1e-12)
            run[f"dense_adapted_{strength}"] = dense(vectors, moved)
        if titles:
            run["dense_titled"] = dense(titled_vectors, query)
            run["bm25_titled"] = [(f"{where[i]}#{i}", s) for i, s in titled_keyword.search(row["question"], DEPTH)]
        runs.append(run)
    cited_in_tuning = set().union(*(run["relevant"] for run in runs if run["tune"]))
    for run in runs:
        run["fresh"] = not run["tune"] and not run["relevant"] & cited_in_tuning
    return runs


def query_adapter(queries: np.ndarray, vectors: np.ndarray, relevant: np.ndarray, strength: float,
                  steps: int = 50, temperature: float = 0.05) -> np.ndarray:
    """A d x d map W for question vectors (q -> qW, scored by cosine against the unchanged chunk vectors),
    trained on `queries` (rows of `relevant`: which chunks are of a relevant document) by the softmax
    over every chunk (the relevant ones against all, Adam, full batch), with `strength` times the squared
    distance of W from the identity as the penalty. LlamaIndex's linear adapter fine-tuning does the
    same from text pairs it embeds itself (llama-index-finetuning, not a dependency); this one trains on
    the study's stored vectors, in a few lines of torch."""
    import torch

    torch.manual_seed(0)
    chunks = torch.tensor(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    questions, wanted = torch.tensor(queries), torch.tensor(relevant)
    identity = torch.eye(vectors.shape[1])
    weights = identity.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([weights], lr=1e-3)
    for _ in range(steps):
        moved = questions @ weights
        logits = (moved / moved.norm(dim=1, keepdim=True)) @ chunks.T / temperature
        loss = (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~wanted, -1e9), 1)).mean()
        loss = loss + strength * ((weights - identity) ** 2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return weights.detach().numpy()


def _document_heads(docs: list, names: list[str], model, saved: Path | None) -> np.ndarray:
    """Each document's vector, the document embedded whole (title and text; the model reads what fits)."""
    head_file = saved.with_suffix(".heads.npz") if saved else None
    texts = [doc.text for doc in docs]
    key = hashlib.sha256(json.dumps(texts).encode()).hexdigest()
    if head_file and head_file.exists() and str(np.load(head_file)["key"]) == key:
        return np.load(head_file)["vectors"]
    order = {Path(doc.source).name: j for j, doc in enumerate(docs)}
    vectors = np.asarray(model.get_text_embedding_batch(texts), dtype=np.float32)[[order[n] for n in names]]
    if head_file:
        np.savez(head_file, key=key, vectors=vectors)
    return vectors


def _phrase_rankers(texts: list[str], model) -> dict[str, Callable[[str], list[tuple[int, float]]]]:
    """BM25 rankings (chunk position, score) that see what the shipped word BM25 does not: adjacent pairs
    of its words (stop words out, stemmed: "vitamin_d", "cell_death") and the model's own word pieces
    (lower-cased WordPiece, which splits unseen chemical and gene names into shared pieces)."""
    from tokenizers import Tokenizer

    from rag.retrieval.keyword import _stemmer, import_bm25s

    bm25s = import_bm25s()

    def pairs(tokens: list[str]) -> list[str]:
        return [f"{a}_{b}" for a, b in zip(tokens, tokens[1:])]

    def words(batch: list[str]) -> list[list[str]]:
        return bm25s.tokenize(batch, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)

    pieces_of = Tokenizer.from_file(str(Path(model.model_dir) / "tokenizer.json"))
    pieces_of.no_truncation()
    pieces_of.no_padding()  # (tokenizer.json pads to 128 [PAD] pieces)

    def pieces(batch: list[str]) -> list[list[str]]:
        return [[t for t in e.tokens if t not in ("[CLS]", "[SEP]")] for e in pieces_of.encode_batch(batch)]

    rankers = {}
    for key, tokenize in [("bm25_pairs", lambda batch: [pairs(t) for t in words(batch)]), ("bm25_pieces", pieces)]:
        index = bm25s.BM25()
        index.index(tokenize(texts), show_progress=False)

        def rank(question: str, index=index, tokenize=tokenize) -> list[tuple[int, float]]:
            tokens = [t for t in tokenize([question])[0] if t in index.vocab_dict]
            if not tokens:
                return []
            found, scores = index.retrieve([tokens], k=min(DEPTH, len(texts)), show_progress=False)
            return [(int(j), float(s)) for j, s in zip(found[0], scores[0]) if s > 0]

        rankers[key] = rank
    return rankers


def _sentence_scorer(texts: list[str], model, saved: Path | None, precision: str = "float32"
                     ) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """query vector -> each chunk's best sentence cosine, over the sentences an ingest stores for it
    (rag.ingestion.sentence_store.spans_of), each distinct sentence embedded once; and each chunk's vector
    made from its sentences' alone (their mean weighted by word pieces, as the model pools a passage's),
    what an ingest would store if it ran the model on sentences only."""
    from rag.ingestion.sentence_store import spans_of

    groups = [[s.text for s in spans_of(text, 0)] or [text] for text in texts]
    distinct = list(dict.fromkeys(t for group in groups for t in group))
    sentence_file = saved.with_suffix(".sentences.npz") if saved else None
    key = hashlib.sha256(json.dumps(distinct if precision == "float32" else [precision, distinct]).encode()).hexdigest()
    if sentence_file and sentence_file.exists() and str(np.load(sentence_file)["key"]) == key:
        vectors = np.load(sentence_file)["vectors"]
    else:
        print(f"embedding {len(distinct)} sentences…", file=sys.stderr)
        vectors = np.asarray(model.get_text_embedding_batch(distinct), dtype=np.float32)
        if sentence_file:
            np.savez(sentence_file, key=key, vectors=vectors)
    row = {t: j for j, t in enumerate(distinct)}
    owner = np.concatenate([[i] * len(group) for i, group in enumerate(groups)])
    rows = np.array([row[t] for group in groups for t in group])
    pieces = np.asarray(model.word_pieces(distinct) if hasattr(model, "word_pieces") else [len(t) for t in distinct],
                        dtype=np.float32)
    means = np.zeros((len(groups), vectors.shape[1]), dtype=np.float32)
    np.add.at(means, owner, vectors[rows] * pieces[rows, None])
    means /= np.clip(np.linalg.norm(means, axis=1, keepdims=True), 1e-12, None)

    def best(query: np.ndarray) -> np.ndarray:
        scores = np.full(len(groups), -1.0, dtype=np.float32)
        np.maximum.at(scores, owner, vectors[rows] @ query)
        return scores

    return best, means


def study(runs: list[dict]) -> list[tuple[str, float, float, float, float]]:
    """(variant, tune nDCG, test nDCG, nDCG over all claims, nDCG over the fresh test claims) rows; a
    variant with free parameters is shown at the values that score best on the tune half."""
    rows = [(name, *score(runs, fn)) for name, fn in [
        ("dense (MiniLM)", lambda r: r["dense"]),
        ("BM25 over chunks", lambda r: r["bm25"]),
        ("BM25 over whole documents", lambda r: r["bm25_documents"]),
        (f"RRF k={RRF_K} of chunks, 20 each (before)", lambda r: rrf(r["dense"], r["bm25"], 20)),
        (f"RRF k={RRF_K} of chunks, {DEPTH} each", lambda r: rrf(r["dense"], r["bm25"], DEPTH)),
        (f"RRF k={RRF_K} of document maxima", lambda r: rrf(best_per_document(r["dense"]),
                                                          best_per_document(r["bm25"]), 20)),
        (f"rag.retrieval.search now ({DENSE_WEIGHT}/{CHUNK_KEYWORD_WEIGHT}/{DOCUMENT_KEYWORD_WEIGHT}, "
         f"{CANDIDATES_PER_RETRIEVER} each)", lambda r: product(r, CANDIDATES_PER_RETRIEVER)),
    ]]
    for name, pick in [("convex, chunk scores", lambda r: (r["dense"], r["bm25"])),
                       ("convex, dense maxima + BM25 over documents",
                        lambda r: (best_per_document(r["dense"]), r["bm25_documents"]))]:
        scored = {a: score(runs, lambda r, a=a: convex(*pick(r), a)) for a in np.round(np.arange(0.2, 0.85, 0.1), 1)}
        alpha = max(scored, key=lambda a: scored[a][0])
        rows.append((f"{name}, dense weight {alpha} (tuned)", *scored[alpha]))
    for depth in (20, DEPTH):
        rows.append(tuned_weights(runs, f"score fusion, {depth} each", lambda r, d, c, n=depth: product(r, n, d, c)))
    # Signals added to rag.retrieval.search's fusion, each scaled by its best score and added to a candidate
    # document's best chunk (as the document's BM25 is): weight chosen on the tune half.
    extra = [("dense over documents (mean of chunk vectors)", "dense_documents", False),
             ("BM25 over titles", "bm25_titles", False)]
    if "dense_heads" in runs[0]:
        extra.append(("dense over documents embedded whole", "dense_heads", False))
    if "bm25_pairs" in runs[0]:
        extra += [("BM25 over adjacent word pairs", "bm25_pairs", True),
                  ("BM25 over the model's word pieces", "bm25_pieces", True)]
    if "sentences" in runs[0]:
        extra.append(("best sentence per chunk (as stored at ingest)", "sentences", True))
        # Chunk vectors from the sentence vectors alone (the model run on sentences only, about half an
        # ingest's model time): in place of the chunks' own, at the shipped weights and re-tuned.
        rows.append(("dense, chunks as the mean of their sentences", *score(runs, lambda r: r["dense_sentence_mean"])))
        rows.append(("rag.retrieval.search with those chunk vectors",
                     *score(runs, lambda r: product(r, CANDIDATES_PER_RETRIEVER, dense_key="dense_sentence_mean"))))
        rows.append(tuned_weights(runs, "score fusion, those chunk vectors",
                                  lambda r, d, c: product(r, DEPTH, d, c, dense_key="dense_sentence_mean")))
    for label, key, chunked in extra:
        rows.append((label, *score(runs, lambda r, k=key: r[k])))
        scored = {w: score(runs, lambda r, w=w, k=key, c=chunked: with_signal(r, k, w, c))
                  for w in (0.02, 0.05, 0.1, 0.2, 0.3)}
        weight = max(scored, key=lambda w: scored[w][0])
        rows.append((f"rag.retrieval.search + {weight} x {key} (tuned)", *scored[weight]))
    # Document-level aggregation past the best chunk (CombSUM-like): a document whose other chunks also
    # match gains a share of their fused scores.
    scored = {w: score(runs, lambda r, w=w: with_other_chunks(r, w)) for w in (0.05, 0.1, 0.2, 0.3, 0.5)}
    weight = max(scored, key=lambda w: scored[w][0])
    rows.append((f"rag.retrieval.search + {weight} x the document's other chunks (tuned)", *scored[weight]))
    # Keyword pseudo-relevance feedback (RM3: Abdul-Jaleel et al., 2004): the words of the fused top chunks,
    # each weighted by its share of a chunk times the chunk's fused score; the best added to the question's
    # words at a weight; both BM25 rankings searched again with them and fused as shipped.
    scored = {p: score(runs, lambda r, p=p: with_feedback(r, *p)) for p in itertools.product((3, 5, 10), (10, 20, 40),
                                                                                            (0.2, 0.35, 0.5))}
    chunks, words, weight = max(scored, key=lambda p: scored[p][0])
    rows.append((f"rag.retrieval.search, BM25 again with {words} words of the {chunks} best chunks at {weight} (tuned)",
                 *scored[(chunks, words, weight)]))
    # Each ranking's scores standardised over its candidates (z-scores; a candidate missing from a ranking
    # counts as its lowest) instead of divided by the best, weights tuned as above.
    rows.append(tuned_weights(runs, f"z-score fusion, {DEPTH} each", standardised, lowest=0.3))
    # The question's vector mapped by a linear adapter trained on the tune half, its penalty chosen there:
    # the "fresh" column shows what it learned that holds for documents it was not trained on.
    adapted = [key for key in runs[0] if key.startswith("dense_adapted_")]
    if adapted:
        scored = {key: score(runs, lambda r, k=key: r[k]) for key in adapted}
        key = max(scored, key=lambda k: scored[k][0])
        rows.append((f"dense, question adapter (penalty {key.rsplit('_', 1)[1]}, tuned)", *scored[key]))
        rows.append(("rag.retrieval.search with the adapted question",
                     *score(runs, lambda r: product(r, CANDIDATES_PER_RETRIEVER, dense_key=key))))
    if "title_dense" in runs[0]:
        rows.append(("dense, titles alone (documents)", *score(runs, lambda r: r["title_dense"])))
        for weight in (0.05, 0.1, 0.15, 0.2, 0.3):
            rows.append((f"rag.retrieval.search + title similarity x {weight} to a document's best chunk",
                         *score(runs, lambda r, w=weight: with_signal(r, "title_dense", w, False))))
    if "dense_titled" in runs[0]:
        rows.append(("dense, chunks under their title", *score(runs, lambda r: r["dense_titled"])))
        rows.append(("BM25, chunks under their title", *score(runs, lambda r: r["bm25_titled"])))
        for label, keys in [("dense titled", ("dense_titled", "bm25")),
                            ("dense and BM25 titled", ("dense_titled", "bm25_titled"))]:
            rows.append((f"rag.retrieval.search weights, {label}",
                         *score(runs, lambda r, k=keys: product(r, CANDIDATES_PER_RETRIEVER, dense_key=k[0], bm25_key=k[1]))))
            rows.append(tuned_weights(runs, f"score fusion, {label}", lambda r, d, c, k=keys: product(
                r, DEPTH, d, c, dense_key=k[0], bm25_key=k[1])))
    return rows


def tuned_weights(runs: list[dict], label: str, fusion: Callable[[dict, float, float], Ranking],
                  lowest: float = 0.4) -> tuple[str, float, float, float, float]:
    """The study row of a three-way fusion at the dense and chunk BM25 weights (steps of 0.05, the rest on
    the document's BM25) that score best on the tune half."""
    grid = [(d, c) for d in np.round(np.arange(lowest, 0.96, 0.05), 2) for c in np.round(np.arange(0, 1.001 - d, 0.05), 2)]
    scored = {w: score(runs, lambda r, w=w: fusion(r, *w)) for w in grid}
    d, c = max(scored, key=lambda w: scored[w][0])
    return (f"{label}: {d}/{c}/{round(1 - d - c, 2)} (tuned)", *scored[(d, c)])


def product(run: dict, depth: int, dense: float = DENSE_WEIGHT, chunk: float = CHUNK_KEYWORD_WEIGHT,
            dense_key: str = "dense", bm25_key: str = "bm25") -> Ranking:
    """rag.retrieval.search's fusion of this claim's rankings, cut at `depth` each, with the given weights."""
    names = [n for n, _ in run[dense_key][:depth] + run[bm25_key][:depth]]
    return list(fuse(run[dense_key][:depth], run[bm25_key][:depth], run["bm25_documents"][:depth],
                     {n: n.split("#")[0] for n in names}, (dense, chunk, 1 - dense - chunk)).items())


def with_signal(run: dict, key: str, weight: float, chunked: bool) -> Ranking:
    """rag.retrieval.search's fusion, then `run[key]` (divided by its best score) added to each candidate
    document's best chunk, times `weight`; a chunk-level signal counts at its document's best chunk."""
    fused = dict(product(run, CANDIDATES_PER_RETRIEVER))
    signal = dict(best_per_document(run[key]) if chunked else run[key])
    best = max(signal.values(), default=0.0) or 1.0
    for document, name in best_chunks(fused).items():
        fused[name] += weight * signal.get(document, 0.0) / best
    return list(fused.items())


def with_other_chunks(run: dict, weight: float) -> Ranking:
    """rag.retrieval.search's fusion, then each document's best chunk plus `weight` times the fused scores of
    its other candidate chunks."""
    fused = dict(product(run, CANDIDATES_PER_RETRIEVER))
    best = best_chunks(fused)
    others: dict[str, float] = defaultdict(float)
    for name, value in fused.items():
        document = name.split("#")[0]
        if best[document] != name:
            others[document] += value
    for document, name in best.items():
        fused[name] += weight * others[document]
    return list(fused.items())


def with_feedback(run: dict, chunks: int, words: int, weight: float) -> Ranking:
    """rag.retrieval.search's fusion with both BM25 rankings searched again for the question's words plus
    the `words` best words of its `chunks` best fused chunks (RM3's relevance model), these at `weight`."""
    relevance: dict[str, float] = defaultdict(float)
    for name, value in sorted(product(run, CANDIDATES_PER_RETRIEVER), key=lambda x: -x[1])[:chunks]:
        counts = run["chunk_words"][name]
        for word, n in counts.items():
            relevance[word] += value * n / (sum(counts.values()) or 1)
    expansion = dict(sorted(relevance.items(), key=lambda x: -x[1])[:words])
    query: dict[str, float] = defaultdict(float)
    for word in run["question_words"]:
        query[word] += (1 - weight) / len(run["question_words"])
    for word, value in expansion.items():
        query[word] += weight * value / (sum(expansion.values()) or 1)
    keyword = run["keyword"]
    chunk_hits, document_hits = keyword.search_words(query, DEPTH, DEPTH)
    return product({**run, "bm25": [(f"{keyword.chunks[i]}#{i}", s) for i, s in chunk_hits],
                    "bm25_documents": document_hits}, CANDIDATES_PER_RETRIEVER)


def standardised(run: dict, dense: float, chunk: float) -> Ranking:
    """rag.retrieval.search's fusion with each ranking's scores as z-scores over its first DEPTH."""
    def z(ranking: Ranking) -> tuple[dict[str, float], float]:
        values = np.array([s for _, s in ranking[:DEPTH]] or [0.0])
        mean, spread = values.mean(), values.std() + 1e-9
        return {n: (s - mean) / spread for n, s in ranking[:DEPTH]}, float((values.min() - mean) / spread)

    (by_dense, dense_floor), (by_chunk, chunk_floor), (by_document, document_floor) = (
        z(run["dense"]), z(run["bm25"]), z(run["bm25_documents"]))
    fused = {n: dense * by_dense.get(n, dense_floor) + chunk * by_chunk.get(n, chunk_floor)
             for n in {**by_dense, **by_chunk}}
    for document, name in best_chunks(fused).items():
        fused[name] += (1 - dense - chunk) * by_document.get(document, document_floor)
    return list(fused.items())


def best_chunks(fused: dict[str, float]) -> dict[str, str]:
    """document -> its best-scoring chunk among the fused candidates ("document#chunk" names)."""
    best: dict[str, str] = {}
    for name in sorted(fused, key=lambda n: -fused[n]):
        best.setdefault(name.split("#")[0], name)
    return best


def score(runs: list[dict], rank: Callable[[dict], Ranking]) -> tuple[float, float, float, float]:
    """Mean nDCG@10 on the tune half, the test half, all claims (what the issue's target reads), and the
    test claims whose documents no tune claim cites (nan when there are none)."""
    halves: dict[bool, list[float]] = {True: [], False: []}
    fresh: list[float] = []
    for run in runs:
        value = ndcg(distinct(rank(run)), run["relevant"], 10)
        halves[run["tune"]].append(value)
        if run.get("fresh"):
            fresh.append(value)
    return (float(np.mean(halves[True])), float(np.mean(halves[False])), float(np.mean(halves[True] + halves[False])),
            float(np.mean(fresh)) if fresh else float("nan"))


def distinct(ranking: Ranking) -> list[str]:
    """Documents in the order of their best chunk."""
    return list(dict.fromkeys(name.split("#")[0] for name, _ in sorted(ranking, key=lambda x: -x[1])))


def best_per_document(ranking: Ranking) -> Ranking:
    best: dict[str, float] = {}
    for name, value in ranking:
        document = name.split("#")[0]
        best[document] = max(best.get(document, value), value)
    return sorted(best.items(), key=lambda x: -x[1])


def rrf(dense: Ranking, keyword: Ranking, depth: int) -> Ranking:
    """Reciprocal rank fusion of the two rankings' first `depth` entries."""
    fused: dict[str, float] = defaultdict(float)
    for ranking in (dense[:depth], keyword[:depth]):
        for rank, (name, _) in enumerate(ranking, start=1):
            fused[name] += 1.0 / (RRF_K + rank)
    return list(fused.items())


def convex(dense: Ranking, keyword: Ranking, alpha: float) -> Ranking:
    """alpha x min-max normalised dense + (1 - alpha) x normalised keyword score (Bruch et al., 2023)."""
    def normalised(ranking: Ranking) -> dict[str, float]:
        ranking = ranking[:DEPTH]
        if not ranking:
            return {}
        high, low = ranking[0][1], ranking[-1][1]
        out: dict[str, float] = {}
        for name, value in ranking:
            out[name] = max(out.get(name, 0.0), (value - low) / (high - low + 1e-9))
        return out

    a, b = normalised(dense), normalised(keyword)
    return [(n, alpha * a.get(n, 0.0) + (1 - alpha) * b.get(n, 0.0)) for n in set(a) | set(b)]


if __name__ == "__main__":
    sys.exit(main())
