"""The persisted BM25 index (bm25s) over the same chunks as the Chroma collection, and over the
whole documents those chunks make up.

Built by ingest from the collection's contents and saved under the data dir; loaded, never
rebuilt, at query time. `ids_digest` records which chunk set it was built from, so a caller
can tell when it no longer matches the collection. The document-level index scores an article by
all its words (a question's terms are often spread over several chunks); `rag.search` fuses it
with the chunk scores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

_STEMMER_LANGUAGE = "english"
FORMAT = 2  # 2: with the document-level index and each chunk's source; an index of format 1 is rebuilt


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def import_bm25s() -> Any:
    """bm25s, imported without its optional scipy and tqdm when that is safe.

    bm25s imports both when they are installed (sentence-transformers brings them): scipy.sparse for
    its `scipy` build backend and tqdm for progress bars. Neither is used here (it builds with its
    numpy backend, which writes the same index files, and progress is always off), and scipy 1.17
    imports numpy.f2py and numpy.testing on the way: together ~0.1 s of a cold `rag ask`, a tenth of
    it. So each is hidden while bm25s is first imported, unless this process already has it, and only
    while this is the process's one thread: another thread importing scipy meanwhile would fail. The
    CLI and each server worker open the index (`Pipeline._open_searcher`) while they are."""
    if "bm25s" in sys.modules:
        return sys.modules["bm25s"]
    import threading

    alone = threading.active_count() == 1
    hidden = [name for name in ("scipy", "tqdm") if alone and name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        import bm25s
    finally:
        for name in hidden:
            del sys.modules[name]
    return bm25s


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer(_STEMMER_LANGUAGE)


@dataclass
class KeywordIndex:
    ids: list[str]
    digest: str
    _bm25: Any = None
    sources: list[str] | None = None  # per chunk, the document it belongs to; None in a format-1 index
    _documents: Any = None  # BM25 over whole documents (chunk texts joined in reading order)
    document_names: list[str] = field(default_factory=list)
    id_set: frozenset[str] = field(init=False, repr=False)  # the published chunk ids, for filtering dense hits
    source_of: dict[str, str] = field(init=False, repr=False)

    RECORD_FIELDS = ("source", "start")  # what `from_records` reads of each chunk's metadata

    def __post_init__(self) -> None:
        self.id_set = frozenset(self.ids)
        self.source_of = dict(zip(self.ids, self.sources)) if self.sources is not None else {}

    @property
    def current(self) -> bool:
        """Whether it has the document-level part this version searches with."""
        return self.sources is not None

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str],
              starts: Sequence[int] | None = None) -> "KeywordIndex":
        """Index chunks, and the documents they make up (`sources`; `starts` orders a document's chunks)."""
        bm25 = documents = None
        whole: dict[str, list[tuple[int, str]]] = {}
        for position, (text, source) in enumerate(zip(texts, sources)):
            whole.setdefault(source, []).append((starts[position] if starts is not None else position, text))
        names = sorted(whole)
        if ids:
            bm25 = _bm25_over(list(texts))
            documents = _bm25_over([" ".join(t for _, t in sorted(whole[n])) for n in names])
        return cls(ids=list(ids), digest=ids_digest(ids), _bm25=bm25, sources=list(sources),
                   _documents=documents, document_names=names)

    @classmethod
    def from_records(cls, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[dict]) -> "KeywordIndex":
        """Built from chunk records as the store returns them (their metadata names `source` and `start`)."""
        return cls.build(ids, texts, [m["source"] for m in metadatas], [int(m.get("start") or 0) for m in metadatas])

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        """The n best chunks: (chunk id, BM25 score)."""
        return self.search_both(query, n, 0)[0]

    def search_both(self, query: str, chunks: int, documents: int
                    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The best `chunks` chunks (id, score) and `documents` documents (source, score), the query
        tokenized once."""
        bm25s = import_bm25s()
        if self._bm25 is None or not self.ids:
            return [], []
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=_stemmer(), show_progress=False)
        if not tokens.vocab:  # the query is all stop words
            return [], []
        return (_top(self._bm25, tokens, chunks, self.ids),
                _top(self._documents, tokens, documents, self.document_names) if self._documents else [])

    def save(self, directory: Path) -> None:
        """Write to a temporary sibling, then swap it in, so readers never see half an index."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._bm25 is not None:
            self._bm25.save(str(tmp / "bm25"))
        if self._documents is not None:
            self._documents.save(str(tmp / "documents"))
        (tmp / "ids.json").write_text(json.dumps({"format": FORMAT, "digest": self.digest, "ids": self.ids,
                                                  "sources": self.sources, "documents": self.document_names}))
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> "KeywordIndex | None":
        """The saved index; None when there is none; StoreDamaged when its files cannot be read."""
        from rag.errors import StoreDamaged

        meta_file = directory / "ids.json"
        if not meta_file.exists():
            if directory.exists() and any(directory.iterdir()):
                raise StoreDamaged("the keyword index has lost its ids.json")
            return None
        bm25s = import_bm25s()
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            ids, digest = list(meta["ids"]), str(meta["digest"])
            # Memory-mapped: a question reads the postings of its own words only, so opening the index
            # costs the same at any size and its pages are shared by every worker on the machine. Safe
            # against ingest, which swaps in a new directory and never rewrites these files in place.
            bm25 = bm25s.BM25.load(str(directory / "bm25"), mmap=True) if ids else None
            current = meta.get("format") == FORMAT
            sources = list(meta["sources"]) if current else None
            documents = bm25s.BM25.load(str(directory / "documents"), mmap=True) if current and ids else None
            names = list(meta["documents"]) if current else []
        except Exception as exc:  # bm25s raises whatever numpy or json raises on a damaged file
            raise StoreDamaged(f"the keyword index cannot be read ({type(exc).__name__})") from None
        if digest != ids_digest(ids) or (sources is not None and len(sources) != len(ids)):
            raise StoreDamaged("the keyword index does not match its own ids")
        return cls(ids=ids, digest=digest, _bm25=_unwrapped(bm25), sources=sources, _documents=_unwrapped(documents),
                   document_names=names)


def _unwrapped(index: Any) -> Any:
    """The memory-mapped score arrays as plain ndarray views of the same pages: every slice of an
    `np.memmap` runs its Python `__array_finalize__`, ~11 % of a served `/retrieve`'s CPU (py-spy)."""
    import numpy as np

    if index is not None:
        index.scores = {k: np.asarray(v) if isinstance(v, np.memmap) else v for k, v in index.scores.items()}
    return index


def _bm25_over(texts: list[str]) -> Any:
    bm25s = import_bm25s()
    index = bm25s.BM25()
    index.index(bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False), show_progress=False)
    return index


def _top(index: Any, tokens: Any, n: int, names: list[str]) -> list[tuple[str, float]]:
    if n <= 0 or not names:
        return []
    found, scores = index.retrieve(tokens, k=min(n, len(names)), show_progress=False)
    return [(names[int(d)], float(s)) for d, s in zip(found[0], scores[0]) if s > 0]
