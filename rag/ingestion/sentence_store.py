"""Sentence vectors computed at ingest and stored with each chunk, so answering needs no model call
beyond the query embedding.

The extractive answerer compares the question with every sentence of the retrieved passages. Embedding
those sentences at question time made a first answer cost ~10x a retrieval (issue 13); here every
sentence of a chunk is embedded when the chunk is, and the vectors ride in the chunk's Chroma metadata.
Chroma rather than a sidecar file: they are written in the same upsert as the chunk (a chunk is never
stored without them, so they are as crash-safe as the chunk), and every reader of a Chroma server gets
them, not only the machine that ran the ingest.

Each vector is stored as int8 (384 bytes for MiniLM rather than 1,536): the answerer only takes cosines,
and the quantisation moves a cosine by less than 0.005 (`tests/test_sentence_store.py`), while a chunk's
metadata stays a few kilobytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from rag.text import Span, sentence_spans

KEY = "sentence_vectors"  # the chunk metadata key; never shown to users or to an LLM
FORMAT_KEY = "sentence_vectors_format"  # a small field to find chunks lacking them without reading them
# Names the encoding and what rag.text.sentence_spans makes of a chunk: change it when either changes,
# and the next ingest gives every chunk new vectors (chunks with another format count as lacking them).
FORMAT = "i8"
FIELDS = (KEY, FORMAT_KEY)


def metadata(encoded: str) -> dict[str, str]:
    """The chunk metadata fields that carry its sentence vectors."""
    return {KEY: encoded, FORMAT_KEY: FORMAT}


def encode(spans: Sequence[Span], vectors: np.ndarray) -> str:
    """One metadata string: format, dimension, the sentences' offsets (start-end), the int8 vectors."""
    if not len(spans):
        return f"{FORMAT}:0::"
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(spans), -1)
    peak = np.abs(vectors).max(axis=1, keepdims=True)
    quantised = np.round(vectors / np.clip(peak, 1e-12, None) * 127).astype(np.int8)
    payload = base64.b64encode(quantised.tobytes()).decode("ascii")
    return f"{FORMAT}:{vectors.shape[1]}:{','.join(f'{s.start}-{s.end}' for s in spans)}:{payload}"


def decode(value: str | None) -> dict[tuple[int, int], np.ndarray]:
    """(start, end) offsets of a sentence -> its unit vector; empty for a chunk stored without them (an
    older index) or a value this version cannot read (embedded at question time then, never an error)."""
    try:
        form, dim, places, payload = (value or "").split(":", 3)
        if form != FORMAT:
            return {}
        offsets = [tuple(int(n) for n in p.split("-")) for p in places.split(",")] if places else []
        vectors = np.frombuffer(base64.b64decode(payload), dtype=np.int8).astype(np.float32).reshape(len(offsets), int(dim))
    except (ValueError, TypeError):
        return {}
    vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return dict(zip(offsets, vectors))


def spans_of(text: str, start: int) -> list[Span]:
    """What the answerer may compare with a question in a chunk (text starting at `start` in its
    document): each sentence, and each run of sentences joined while a quotation is open (the unit the
    extractive answer quotes, see rag.answer.citations.whole_quotes)."""
    from rag.answer.citations import whole_quotes

    sentences = sentence_spans(text, start)
    return list(dict.fromkeys([*sentences, *whole_quotes(sentences, _Chunk(text, start))]))


@dataclass(frozen=True)
class _Chunk:
    text: str
    start: int


def embed_chunks(chunks: Sequence[tuple[str, int]], embed: Callable[[list[str]], Any]) -> list[str]:
    """The encoded sentence vectors of each (chunk text, start offset in its document). Each distinct
    sentence is embedded once, though overlapping chunks share sentences."""
    spans = [spans_of(text, start) for text, start in chunks]
    distinct = distinct_texts(spans)
    return encode_all(spans, dict(zip(distinct, embed(distinct))) if distinct else {})


def distinct_texts(spans: Sequence[Sequence[Span]]) -> list[str]:
    """Each sentence text of these chunks' spans once, in order of first appearance."""
    return list(dict.fromkeys(s.text for group in spans for s in group))


def encode_all(spans: Sequence[Sequence[Span]], vectors: dict[str, Any]) -> list[str]:
    """The encoded sentence vectors of each chunk's spans, from text -> vector."""
    return [encode(group, np.array([vectors[s.text] for s in group], dtype=np.float32)) for group in spans]
