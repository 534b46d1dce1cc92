"""Fit the injection detector's classifier: `python -m rag.ingestion.injection_fit`.

A logistic regression over MiniLM sentence vectors: is this sentence an instruction to a machine? It
is fitted on the training sentences of `rag/data/injection.toml` (addressees × requests on varied
topics, plus imperatives) and the exemplars there, against real prose nobody planted anything in:
the public ClapNQ passages (Wikipedia) and SciFact abstracts in ../shared/bench, the files whose name
hashes into the first half. The operating point is a rule, not a tuned number: the highest score
any sentence of the other half of that prose reaches, so on prose like it the false-positive rate is
below one in the number of sentences read. Writes `rag/data/injection_model.json` (384 weights, the
bias and the threshold) and prints the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tomllib
from pathlib import Path

import numpy as np

from rag.config import PROJECT_DIR, Settings

BENCH = PROJECT_DIR.parent / "shared" / "bench"
CORPORA = ("clapnq-dev-a", "scifact-train")
MAX_FILES = 1500  # per corpus and half: ~8,000 sentences, a few minutes of MiniLM on two cores
MODEL_FILE = Path(__file__).resolve().parent.parent / "data" / "injection_model.json"


def _sentences(folder: Path, first_half: bool) -> list[str]:
    from rag.text import sentence_spans

    files = sorted(f for f in folder.rglob("*") if f.is_file()
                   and (hashlib.sha256(f.name.encode()).digest()[0] < 128) == first_half)[:MAX_FILES]
    return [s.text for f in files for s in sentence_spans(f.read_text(encoding="utf-8", errors="replace"))
            if len(s.text.split()) >= 5]


def training_instructions() -> list[str]:
    from rag.ingestion.injection import _RULES_FILE

    raw = tomllib.loads(_RULES_FILE.read_text(encoding="utf-8"))
    training = raw["training"]
    made = [f"{who} {what}." for who in training["addressees"] for what in training["requests"]]
    return [*made, *training["imperatives"], *raw["instruction_exemplars"]]


def main(argv: list[str] | None = None) -> int:
    from sklearn.linear_model import LogisticRegression

    from rag.embedding.models import get_embedder
    from rag.ingestion.injection import fold

    parser = argparse.ArgumentParser(prog="python -m rag.ingestion.injection_fit", description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, default=BENCH)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    args = parser.parse_args(argv)
    embedder = get_embedder(Settings())

    def vectors(texts: list[str]) -> np.ndarray:
        v = np.asarray(embedder.get_text_embedding_batch([fold(t) for t in texts]), dtype=np.float32)
        return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9)

    positives = vectors(training_instructions())
    prose = vectors([t for name in CORPORA for t in _sentences(args.bench / name / "corpus", True)])
    held_out = vectors([t for name in CORPORA for t in _sentences(args.bench / name / "corpus", False)])
    x = np.concatenate([positives, prose])
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(prose))])
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(x, y)
    score = lambda v: v @ model.coef_[0] + model.intercept_[0]  # noqa: E731 - the logit
    threshold = float(score(held_out).max())
    data = {"weights": [round(float(w), 6) for w in model.coef_[0]], "bias": round(float(model.intercept_[0]), 6),
            "threshold": round(threshold, 4),
            "fitted_on": {"instructions": len(positives), "prose_sentences": len(prose),
                          "held_out_prose_sentences": len(held_out)},
            "training_recall": round(float((score(positives) > threshold).mean()), 4)}
    args.out.write_text(json.dumps(data) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in data.items() if k not in ("weights",)}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
