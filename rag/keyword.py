"""The persisted BM25 index (bm25s) over the same chunks as the Chroma collection.

Built by ingest from the collection's contents and saved under the data dir; loaded, never
rebuilt, at query time. `ids_digest` records which chunk set it was built from, so a caller
can tell when it no longer matches the collection.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

_STEMMER_LANGUAGE = "english"


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer(_STEMMER_LANGUAGE)


@dataclass
class KeywordIndex:
    ids: list[str]
    digest: str
    _bm25: Any = None
    id_set: frozenset[str] = field(init=False, repr=False)  # the published chunk ids, for filtering dense hits

    def __post_init__(self) -> None:
        self.id_set = frozenset(self.ids)

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str]) -> "KeywordIndex":
        import bm25s

        bm25 = None
        if ids:
            bm25 = bm25s.BM25()
            bm25.index(bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False),
                       show_progress=False)
        return cls(ids=list(ids), digest=ids_digest(ids), _bm25=bm25)

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        import bm25s

        if self._bm25 is None or not self.ids:
            return []
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=_stemmer(), show_progress=False)
        if not tokens.vocab:  # the query is all stop words
            return []
        docs, scores = self._bm25.retrieve(tokens, k=min(n, len(self.ids)), show_progress=False)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]

    def save(self, directory: Path) -> None:
        """Write to a temporary sibling, then swap it in, so readers never see half an index."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._bm25 is not None:
            self._bm25.save(str(tmp / "bm25"))
        (tmp / "ids.json").write_text(json.dumps({"digest": self.digest, "ids": self.ids}))
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
        import bm25s

        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            ids, digest = list(meta["ids"]), str(meta["digest"])
            bm25 = bm25s.BM25.load(str(directory / "bm25")) if ids else None
        except Exception as exc:  # bm25s raises whatever numpy or json raises on a damaged file
            raise StoreDamaged(f"the keyword index cannot be read ({type(exc).__name__})") from None
        if digest != ids_digest(ids):
            raise StoreDamaged("the keyword index does not match its own ids")
        return cls(ids=ids, digest=digest, _bm25=bm25)
