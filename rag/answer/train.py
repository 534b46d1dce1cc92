"""Fit the offline answerer's weights: `python -m rag.answer.train` (or `make answerer`).

Labelled data:
- a public benchmark with answerable and unanswerable questions whose `selected_sentences` mark the
  passage sentences that answer (default ../shared/bench/clapnq-dev-a, read in place);
- the project's own gold questions (`evals/gold.jsonl`): a sentence of a gold source that holds a fact
  phrase answers. Only its `dev` rows are fitted on; `test` rows are reported on.

The benchmark's questions are split in two halves by a hash of their id: the models and both operating
points are fitted on the first half only, and the second half is scored with exactly the code the
answerer runs, so the figures written beside the weights are held-out ones.

What is fitted:
- the sentence model: logistic regression, P(sentence answers | features);
- the answerability model: logistic regression over the best sentence scores and the names grounded;
- the answer threshold is not fitted: the answerer refuses when the calibrated P(answerable) is below
  0.5, i.e. when the passages more likely do not answer than do (a wrong answer and a wrong refusal
  cost the same). Both data sets weigh the same in the fit, so neither one's share of unanswerable
  questions sets that prior;
- the include threshold: the P(answers) a further sentence needs to join the best one, i.e. how long
  an answer is. It is chosen for the best token F1 against human reference answers, so only on the
  benchmark: the own gold's reference answers are short notes written for fact checks, and a proxy
  measured on them (fact recall against citation precision, 48 questions) proved too flat and noisy to
  set answer length: quantising the sentence vectors (a change of cosines below 0.001) moved its
  optimum from 0.06 to 0.24 and lost 0.02 token F1 on the held-out half.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer.scoring import (QUESTION_FEATURES, SENTENCE_FEATURES, WEIGHTS_FILE, AnswererModel, Candidate,
                                Logistic, candidates, featurise, missing_entities, question_features)
from rag.config import PROJECT_DIR, Settings

DEFAULT_BENCH = PROJECT_DIR.parent / "shared" / "bench" / "clapnq-dev-a"
SENTENCE_MATCH_F1 = 0.6  # our sentence splitter and the benchmark's differ a little; a match is most tokens shared
REGULARISATION = 1.0  # scikit-learn's default C
OWN = "own-gold"
ANSWER_THRESHOLD = 0.5  # refuse when unanswerable is the likelier of the two (see the module docstring)


@dataclass
class Question:
    dataset: str
    id: str
    query: str  # the question as searched for (follow-ups condensed)
    fitted: bool  # in the half the weights are fitted on
    answerable: bool
    references: list[str]
    facts: list[list[str]]
    sources: list[str]  # the gold sources, as paths relative to the corpus
    passages: list[Any]
    found: list[Candidate]
    labels: np.ndarray
    missing: list[str] = field(default_factory=list)


def collect(gold_path: Path, corpus: Path, settings: Settings, dataset: str, fitted_of) -> list[Question]:
    """Retrieve for every gold question as `rag ask` does, and label every candidate sentence."""
    from rag.answer.extractive import in_asked_period, stored_sentence_vectors
    from rag.answer.chat import condense
    from rag.evaluation.gold import load_gold, matches
    from rag.evaluation.metrics import phrase_in, squad_tokens, tokens_f1
    from rag.evaluation.runner import _corpus_files, _relative, eval_settings
    from rag.ingestion.incremental import expand_paths
    from rag.pipeline import Pipeline
    from rag.text import normalise

    files = _corpus_files(corpus, expand_paths)
    items = load_gold(gold_path, corpus_files={_relative(f, corpus) for f in files})
    pipeline = Pipeline(eval_settings(settings, corpus, files))
    pipeline.ingest([corpus])
    retriever = pipeline.searcher
    questions = []
    for n, item in enumerate(items, start=1):
        query = condense(item.question, item.history)
        vector = retriever.embedder.get_query_embedding(query)
        passages = retriever.search(query, settings.k, query_vector=vector)
        found = candidates(in_asked_period(query, passages))
        featurise(query, found, vector, stored_sentence_vectors(passages, retriever.embedder))
        selected = [squad_tokens(s) for group in item.selected_sentences for s in group]
        labels = []
        for c in found:
            gold_doc = any(matches(s, _relative(c.passage.source, corpus)) for s in item.sources)
            if not (item.answerable and gold_doc):
                labels.append(0)
            elif selected:
                tokens = squad_tokens(c.span.text)
                labels.append(int(any(tokens_f1(tokens, s) >= SENTENCE_MATCH_F1 for s in selected)))
            else:
                text = normalise(c.span.text)
                labels.append(int(any(phrase_in(p, text) for fact in item.facts for p in fact)))
        questions.append(Question(dataset, item.id, query, fitted_of(item), item.answerable, item.references, item.facts,
                                  [f for f in (_relative(p, corpus) for p in files) if any(matches(s, f) for s in
                                                                                         item.sources)], passages, found, np.array(labels), missing_entities(query, passages)))
        if n % 50 == 0:
            print(f"  {dataset}: {n}/{len(items)} questions", file=sys.stderr)
    return questions


def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> Logistic:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=REGULARISATION, max_iter=2000).fit((x - mean) / scale, y, sample_weight=weights)
    return Logistic(model.coef_[0].astype(np.float32), float(model.intercept_[0]), mean.astype(np.float32),
                    scale.astype(np.float32))


def fit(questions: list[Question]) -> tuple[AnswererModel, dict[str, Any]]:
    train = [q for q in questions if q.fitted]
    x = np.concatenate([np.stack([c.features for c in q.found]) for q in train if q.found])
    y = np.concatenate([q.labels for q in train if q.found])
    share = _dataset_weights(train)
    sentence = fit_logistic(x, y, np.concatenate([np.full(len(q.found), share[q.dataset]) for q in train if q.found]))
    for q in questions:
        if q.found:
            logits = sentence.logits(np.stack([c.features for c in q.found]))
            for c, logit in zip(q.found, logits):
                c.logit = float(logit)
                c.probability = float(1 / (1 + np.exp(-logit)))
    # The answerability model only sees questions the answerer has not already refused on evidence (a name
    # or number no passage grounds), so it is fitted on those alone: P(answerable | names grounded).
    reach = [q for q in train if q.found and not q.missing]
    share = _dataset_weights(reach)
    qx = np.stack([question_features(q.query, q.found, q.passages) for q in reach])
    answerable = fit_logistic(qx, np.array([int(q.answerable) for q in reach]),
                              np.array([share[q.dataset] for q in reach]))
    model = AnswererModel(sentence, answerable, ANSWER_THRESHOLD, 0.5)
    include = _best_include_threshold([q for q in train if q.answerable and q.dataset != OWN and q.references], model)
    model = AnswererModel(sentence, answerable, ANSWER_THRESHOLD, include)
    return model, {"fitted_on": _summary(train), "rows": {"sentences": int(len(y)), "answering": int(y.sum())}}


def _dataset_weights(questions: list[Question]) -> dict[str, float]:
    """Sample weights that let each data set count as much as the other, whatever their sizes: the
    answerer serves news articles as much as encyclopedia passages."""
    counts = _summary(questions)
    return {name: len(questions) / (len(counts) * n) for name, n in counts.items()}


def _answerable_probability(model: AnswererModel, q: Question) -> float:
    """P(answerable) as the answerer computes it; 0 when it refuses before scoring (a name not grounded)."""
    if q.missing or not q.found:
        return 0.0
    logit = model.answerable.logits(question_features(q.query, q.found, q.passages))[0]
    return float(1 / (1 + np.exp(-logit)))


def _best_include_threshold(questions: list[Question], model: AnswererModel) -> float:
    """The include threshold with the best mean token F1 of the answers against the human references."""
    from rag.answer.extractive import select
    from rag.evaluation.metrics import token_f1

    settings = Settings()
    best, best_f1 = 0.5, -1.0
    for t in np.linspace(0.02, 0.5, 25):
        f1 = float(np.mean([token_f1(" ".join(c.span.text for c in select(q.found, float(t), settings.max_answer_words)),
                                     q.references) for q in questions if q.found]))
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return round(best, 3)


def report(model: AnswererModel, questions: list[Question]) -> dict[str, Any]:
    """Answer rate, refusal rate and token F1 per data set and half, as the answerer would answer."""
    from rag.answer.extractive import select
    from rag.evaluation.metrics import fact_recall, token_f1

    settings = Settings()
    out: dict[str, Any] = {}
    for dataset in sorted({q.dataset for q in questions}):
        for fitted in (True, False):
            mine = [q for q in questions if q.dataset == dataset and q.fitted == fitted]
            if not mine:
                continue
            answered = {id(q): _answerable_probability(model, q) >= model.answer_threshold for q in mine}
            answers = {id(q): " ".join(c.span.text for c in select(q.found, model.include_threshold,
                                                                   settings.max_answer_words))
                       if answered[id(q)] else "" for q in mine}
            f1 = [token_f1(answers[id(q)], q.references) for q in mine if q.answerable and q.references]
            facts = [fact_recall(answers[id(q)], q.facts) if answers[id(q)] else 0.0
                     for q in mine if q.answerable and q.facts]
            yes = [answered[id(q)] for q in mine if q.answerable]
            no = [not answered[id(q)] for q in mine if not q.answerable]
            out[f"{dataset} ({'fitted' if fitted else 'held out'})"] = {
                "questions": len(mine), "answer_rate": _mean(yes), "refusal_rate": _mean(no), "token_f1": _mean(f1),
                "fact_recall": _mean(facts)}
    return out


def _mean(values) -> float | None:
    return round(float(np.mean(values)), 4) if len(values) else None


def _summary(questions: list[Question]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for q in questions:
        counts[q.dataset] = counts.get(q.dataset, 0) + 1
    return counts


def _half(identifier: str) -> bool:
    """A stable half of the benchmark: the first byte of the id's SHA-256 below 128."""
    return hashlib.sha256(identifier.encode()).digest()[0] < 128


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.answer.train", description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="benchmark folder (corpus/ + gold.jsonl)")
    parser.add_argument("--gold", type=Path, default=PROJECT_DIR / "evals" / "gold.jsonl")
    parser.add_argument("--corpus", type=Path, default=PROJECT_DIR / "seeds")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--compare", type=Path, metavar="WEIGHTS",
                        help="also report these saved weights on the same questions (e.g. the shipped ones "
                             "on an index of int8 sentence vectors, RAG_PASSAGE_PRECISION=int8)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    questions = collect(args.bench / "gold.jsonl", args.bench / "corpus", settings, args.bench.name,
                        lambda item: _half(item.id))
    questions += collect(args.gold, args.corpus, settings, OWN, lambda item: item.split != "test")
    model, meta = fit(questions)
    meta["report"] = report(model, questions)
    data = {"sentence": model.sentence.to_dict(SENTENCE_FEATURES),
            "answerable": model.answerable.to_dict(QUESTION_FEATURES),
            "answer_threshold": model.answer_threshold, "include_threshold": model.include_threshold, **meta}
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.compare:
        print(f"{args.compare}:\n{json.dumps(report(AnswererModel.load(args.compare), questions), indent=2)}\nrefitted:")
    print(json.dumps(meta["report"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
