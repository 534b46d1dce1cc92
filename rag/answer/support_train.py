"""Fit the support check's weights: `python -m rag.answer.support_train` (or `make support`).

Labelled pairs from the public ClapNQ benchmark (default ../shared/bench/clapnq-dev-a, read in place):
every sentence of a human reference answer of an answerable question, beside
- its gold passage: supported;
- the most similar other passage of the corpus (a swapped citation): unsupported;
- its gold passage, with one number in it changed (when it states one): unsupported;
- its gold passage, but the sentence taken from another question's answer: unsupported.
Questions are split in halves by a hash of their id (as for the answerer): the model is fitted on the
first half and the figures written beside the weights are from the second. Both classes weigh the same
in the fit, so P(supported) ≥ 0.5 means supported is the likelier of the two.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.answer.support import _NUMBER, SUPPORT_FEATURES, SUPPORT_FILE, THRESHOLD, SupportModel, support_features
from rag.answer.train import DEFAULT_BENCH, _half, fit_logistic
from rag.config import Settings
from rag.text import sentence_spans

KINDS = ("supported", "swapped", "number", "foreign")


@dataclass
class Pair:
    question_id: str
    fitted: bool
    kind: str
    features: np.ndarray


def changed_number(sentence: str, seed: str) -> str | None:
    """The sentence with its first number replaced by a different one of the same shape, or None."""
    match = _NUMBER.search(sentence)
    if not match:
        return None
    rng = random.Random(seed)
    digits = match.group(0)
    plain = digits.replace(",", "")
    if re.fullmatch(r"1\d{3}|20\d{2}", plain):  # a year: another year nearby
        new = str(int(plain) + rng.choice([-7, -3, -2, 2, 3, 7]))
    elif "." in plain:
        whole, _, frac = plain.partition(".")
        new = f"{int(whole) + rng.randint(1, 9)}.{frac}"
    else:
        new = str(int(plain) + rng.randint(1, max(9, int(plain))))
    return sentence[:match.start()] + new + sentence[match.end():]


def collect(bench: Path, embedder) -> list[Pair]:
    from rag.answer.extractive import sentence_vectors
    from rag.evaluation.gold import load_gold

    items = [i for i in load_gold(bench / "gold.jsonl") if i.answerable and i.references and i.sources]
    docs = {p.name: p.read_text(encoding="utf-8") for p in sorted((bench / "corpus").glob("*.txt"))}
    doc_sentences = {name: [s.text for s in sentence_spans(text)] or [text] for name, text in docs.items()}
    every = [s for group in doc_sentences.values() for s in group]
    unit = lambda v: v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9)  # noqa: E731
    table = dict(zip(every, unit(np.asarray(sentence_vectors(embedder, every), dtype=np.float32))))
    doc_vectors = {name: np.stack([table[s] for s in group]) for name, group in doc_sentences.items()}
    answers = {i.id: list(dict.fromkeys(s.text for r in i.references for s in sentence_spans(r)
                                        if len(s.text.split()) >= 4)) for i in items}
    print(f"  {len(items)} answerable questions, {sum(map(len, answers.values()))} answer sentences, "
          f"{len(docs)} passages", file=sys.stderr)
    pairs: list[Pair] = []
    ids = [i.id for i in items]
    for item in items:
        gold = [s for s in item.sources if s in docs]
        if not gold:
            continue
        fitted = _half(item.id)
        rng = random.Random(item.id)
        foreign_id = rng.choice([i for i in ids if i != item.id])
        texts = answers[item.id]
        changed = [changed_number(s, item.id + s) for s in texts]
        foreign = answers[foreign_id][:len(texts)]
        to_embed = list(dict.fromkeys([*texts, *(c for c in changed if c), *foreign]))
        vectors = dict(zip(to_embed, unit(np.asarray(sentence_vectors(embedder, to_embed), dtype=np.float32))))

        def pair(kind: str, sentence: str, doc: str) -> Pair:
            return Pair(item.id, fitted, kind, support_features(sentence, vectors[sentence], item.question, docs[doc],
                                                                doc_sentences[doc], doc_vectors[doc]))

        for sentence, change in zip(texts, changed):
            pairs.append(pair("supported", sentence, gold[0]))
            nearest = max((d for d in docs if d not in item.sources),
                          key=lambda d: float((doc_vectors[d] @ vectors[sentence]).max()))
            pairs.append(pair("swapped", sentence, nearest))
            if change:
                pairs.append(pair("number", change, gold[0]))
        for sentence in foreign:
            pairs.append(pair("foreign", sentence, gold[0]))
    return pairs


def fit(pairs: list[Pair]) -> SupportModel:
    train = [p for p in pairs if p.fitted]
    x = np.stack([p.features for p in train])
    y = np.array([int(p.kind == "supported") for p in train])
    positives = y.sum()
    weights = np.where(y == 1, len(y) / (2 * positives), len(y) / (2 * (len(y) - positives)))
    return SupportModel(fit_logistic(x, y, weights), THRESHOLD)


def report(model: SupportModel, pairs: list[Pair]) -> dict:
    """Per half: the share of each kind judged unsupported, and the precision of 'unsupported'."""
    out = {}
    for fitted in (True, False):
        mine = [p for p in pairs if p.fitted == fitted]
        flagged = model.probabilities(np.stack([p.features for p in mine])) < model.threshold
        kinds = {kind: [f for p, f in zip(mine, flagged) if p.kind == kind] for kind in KINDS}
        wrong = sum(kinds["supported"])
        caught = sum(sum(v) for k, v in kinds.items() if k != "supported")
        out["fitted" if fitted else "held out"] = {
            "pairs": len(mine),
            "supported kept": round(1 - float(np.mean(kinds["supported"])), 4),
            **{f"{k} flagged": round(float(np.mean(v)), 4) for k, v in kinds.items() if k != "supported" and v},
            "precision of unsupported": round(caught / (caught + wrong), 4) if caught + wrong else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.answer.support_train", description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="benchmark folder (corpus/ + gold.jsonl)")
    parser.add_argument("--out", type=Path, default=SUPPORT_FILE)
    args = parser.parse_args(argv)
    from rag.embedding.models import get_embedder

    pairs = collect(args.bench, get_embedder(Settings.from_env()))
    model = fit(pairs)
    figures = report(model, pairs)
    counts = {kind: sum(p.kind == kind for p in pairs if p.fitted) for kind in KINDS}
    data = {"model": model.logistic.to_dict(SUPPORT_FEATURES), "threshold": model.threshold,
            "fitted_on": {"benchmark": args.bench.name, "pairs": counts,
                          "questions": len({p.question_id for p in pairs if p.fitted})},
            "report": figures}
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
