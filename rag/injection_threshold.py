"""Fit the semantic threshold of the injection detector: `python -m rag.injection_threshold`.

The rule: a sentence counts as an instruction by meaning when its MiniLM similarity to an instruction
exemplar (`rag/data/injection.toml`) is above every sentence of a sample of real prose that nobody
planted anything in: the public ClapNQ passages (Wikipedia) and SciFact abstracts in ../shared/bench,
the files whose name hashes into the fitting half. The threshold is the highest such similarity plus
a margin of 0.02, so on prose like it the false-positive rate is below one in the number of sentences
read. The other half of the files is scored too and the count of its sentences over the threshold is
printed: that is the held-out false-positive figure. The script rewrites `semantic_threshold` in the
TOML file in place.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from rag.config import PROJECT_DIR, Settings

BENCH = PROJECT_DIR.parent / "shared" / "bench"
CORPORA = ("clapnq-dev-a", "scifact-train")
MARGIN = 0.02
MAX_FILES = 1500  # per corpus and half: ~10,000 sentences, a few minutes of MiniLM on two cores


def _sentences(folder: Path, fitting: bool) -> list[str]:
    from rag.text import sentence_spans

    files = sorted(f for f in folder.rglob("*") if f.is_file()
                   and (hashlib.sha256(f.name.encode()).digest()[0] < 128) == fitting)[:MAX_FILES]
    return [s.text for f in files for s in sentence_spans(f.read_text(encoding="utf-8", errors="replace"))
            if len(s.text.split()) >= 5]


def main(argv: list[str] | None = None) -> int:
    from rag.embeddings import get_embedder
    from rag.injection import _RULES_FILE, fold, semantic_similarity

    parser = argparse.ArgumentParser(prog="python -m rag.injection_threshold", description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, default=BENCH)
    args = parser.parse_args(argv)
    similarity = semantic_similarity(get_embedder(Settings()))
    scores = {}
    for fitting in (True, False):
        texts = [fold(t) for name in CORPORA for t in _sentences(args.bench / name / "corpus", fitting)]
        scores[fitting] = (len(texts), similarity(texts))
    count, fitted = scores[True]
    threshold = round(max(fitted) + MARGIN, 3)
    held_count, held = scores[False]
    over = sum(score >= threshold for score in held)
    print(f"fitting half: {count} sentences, highest similarity {max(fitted):.3f} -> threshold {threshold}")
    print(f"held-out half: {held_count} sentences, {over} at or over the threshold "
          f"(false-positive rate {over / max(held_count, 1):.5f})")
    text = _RULES_FILE.read_text(encoding="utf-8")
    _RULES_FILE.write_text(re.sub(r"(?m)^semantic_threshold = .*$", f"semantic_threshold = {threshold}", text),
                           encoding="utf-8")
    print(f"wrote semantic_threshold = {threshold} to {_RULES_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
