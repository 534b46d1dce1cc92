"""How well the support check catches unsupported sentences in real LLM answers (`rag eval --mode llm`).

Into every answer the model gave, sentences known to be unsupported are planted, each cited like a
real one: a kept sentence with one number changed, two kept sentences with their citations swapped
(when they cite different passages), and a kept sentence of the previous question's answer. Each is
checked exactly as the answerer checks the model's own sentences. Precision counts every flag on the
model's own sentences as a false alarm (the conservative reading: they may have been right).
"""

from __future__ import annotations

from typing import Any

from rag.answer.support import check_support
from rag.answer.support_train import changed_number


def plant_and_check(answer: Any, embedder: Any, foreign: str | None) -> dict[str, int] | None:
    """Counts for one LLM answer: planted, planted caught, own sentences checked and flagged. None when
    the answer is not the model's (a fallback or an abstention)."""
    from rag.answer.extractive import sentence_vectors, stored_sentence_vectors

    if answer.mode != "llm" or answer.abstained or not answer.support:
        return None
    by_id = {c.id: c for c in answer.citations}
    passages = list({p.id: p for p in answer.passages}.values())
    index = {p.id: i for i, p in enumerate(passages, start=1)}
    own = [(s["sentence"], sorted({index[by_id[n].passage_id] for n in s["citations"] if n in by_id}))
           for s in answer.support if s["citations"]]
    kept = [(s, c) for (s, c), item in zip(own, [x for x in answer.support if x["citations"]]) if item["supported"]]
    planted: list[tuple[str, list[int]]] = []
    for sentence, cited in kept:
        changed = changed_number(sentence, sentence)
        if changed:
            planted.append((changed, cited))
    for (a, ca), (b, cb) in zip(kept, kept[1:]):
        if set(ca).isdisjoint(cb):
            planted += [(a, cb), (b, ca)]
    if foreign and kept:
        planted.append((foreign, kept[0][1]))
    if not planted:
        return {"planted": 0, "caught": 0, "own": len(own), "own_flagged": sum(not s["supported"]
                                                                                for s in answer.support if s["citations"])}
    verdicts = check_support(answer.query or answer.question, [s for s, _ in planted], [c for _, c in planted], passages,
                             lambda texts: sentence_vectors(embedder, texts), stored_sentence_vectors(passages, embedder))
    return {"planted": len(planted), "caught": sum(v.supported is False for v in verdicts), "own": len(own),
            "own_flagged": sum(s["supported"] is False for s in answer.support if s["citations"])}


def first_kept_sentence(answer: Any) -> str | None:
    return next((s["sentence"] for s in answer.support if s["supported"]), None)
