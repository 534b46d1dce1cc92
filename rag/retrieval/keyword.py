"""The persisted BM25 index (bm25s) over the same chunks as the Chroma collection, and over the
whole documents those chunks make up.

Built by ingest from the collection's contents and saved under the data dir; loaded, never
rebuilt, at query time. `ids_digest` records which chunk set it was built from, so a caller
can tell when it no longer matches the collection. The document-level index scores an article by
all its words (a question's terms are often spread over several chunks); `rag.retrieval.search` fuses it
with the chunk scores.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

_STEMMER_LANGUAGE = "english"
# 2: with the document-level index and each chunk's source (an index of format 1 is rebuilt); 3: the chunk ids
# and their documents as arrays beside ids.json rather than in it (an index of format 2 is read as it is)
FORMAT = 3


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


class ChunkDocuments(Mapping[str, str]):
    """The published chunks: chunk id -> the document it belongs to, and each chunk's id by its place
    in the BM25 index. Held as three arrays (the ids as UTF-8 bytes in index order, the order that
    sorts them, each chunk's document as a number into `names`) rather than as Python strings, a set
    and a dict: at 100k chunks those took ~38 MB of every process that searches (tracemalloc), a tenth
    of a cold `rag ask`'s memory, and reading them from JSON 0.08 s of its start (now 0.03 s, with the
    digest check). A look-up is a binary search (`np.searchsorted`) for a question's few dozen
    candidates at once, ~60 µs. (numpy's byte strings drop trailing NULs: ingest's chunk ids are hex
    digests, and no id ends in one.)"""

    FILES = ("chunk_ids.npy", "chunk_order.npy", "chunk_documents.npy")

    def __init__(self, ids: Any, order: Any, document: Any, names: list[str]) -> None:
        self._ids, self._order, self._document, self.names = ids, order, document, names

    @classmethod
    def of(cls, ids: Sequence[str], sources: Sequence[str] | None, names: list[str]) -> "ChunkDocuments":
        """From lists (`sources`: each chunk's document, one of `names`; None: not known, a format-1 index)."""
        import numpy as np

        array = _bytes_array(ids)
        number = {name: n for n, name in enumerate(names)}
        document = (np.fromiter((number[s] for s in sources), dtype=np.int32, count=len(ids)) if sources is not None
                    else np.full(len(ids), -1, dtype=np.int32))
        return cls(array, np.argsort(array, kind="stable").astype(np.int32), document, names)

    @property
    def known(self) -> bool:
        """Whether each chunk's document is known (not in an index of format 1)."""
        return not len(self._document) or int(self._document[0]) >= 0

    def id_at(self, position: int) -> str:
        return bytes(self._ids[position]).decode("utf-8")

    def positions(self, chunk_ids: Sequence[str]) -> list[int | None]:
        """Where each chunk is in the index (None: not published), in one binary search over them all."""
        import numpy as np

        if not len(self._ids) or not len(chunk_ids):
            return [None] * len(chunk_ids)
        keys = _bytes_array(chunk_ids)
        at = self._order[np.minimum(np.searchsorted(self._ids, keys, sorter=self._order), len(self._ids) - 1)]
        # numpy pads the shorter of two byte strings with NULs to compare them, so this is the exact test
        hit = self._ids[at] == keys
        return [int(p) if h else None for p, h in zip(at.tolist(), hit.tolist())]

    def documents_of(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        """Each published chunk's document ("" when not known), the unpublished left out."""
        chunk_ids = list(chunk_ids)
        found = [(c, p) for c, p in zip(chunk_ids, self.positions(chunk_ids)) if p is not None]
        numbers = self._document[[p for _, p in found]].tolist() if found else []
        return {c: self.names[d] if d >= 0 else "" for (c, _), d in zip(found, numbers)}

    def position(self, chunk_id: str) -> int | None:
        """Where the chunk is in the index; None when it is not published."""
        return self.positions([chunk_id])[0]

    def __getitem__(self, chunk_id: str) -> str:
        return self.documents_of([chunk_id])[chunk_id]  # KeyError when not published

    def __contains__(self, chunk_id: object) -> bool:
        return isinstance(chunk_id, str) and self.position(chunk_id) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return [i.decode("utf-8") for i in self._ids.tolist()]

    def digest(self) -> str:
        """`ids_digest` of these ids, joined in the order that already sorts them (UTF-8 bytes sort as their
        strings do): no 100k strings decoded and sorted again at start-up, 12 ms against 22 at 100k."""
        return hashlib.sha256(b"\n".join(self._ids[self._order].tolist())).hexdigest()

    def sources(self) -> list[str] | None:
        return [self.names[d] for d in self._document.tolist()] if self.known else None

    def save(self, directory: Path) -> None:
        import numpy as np

        for name, array in zip(self.FILES, (self._ids, self._order, self._document)):
            np.save(directory / name, array)

    @classmethod
    def load(cls, directory: Path, names: list[str]) -> "ChunkDocuments":
        """The saved arrays, checked against each other; ValueError (or OSError) when they do not fit."""
        import numpy as np

        ids, order, document = (np.load(directory / name, allow_pickle=False) for name in cls.FILES)
        n = len(ids)
        if (ids.dtype.kind != "S" or order.shape != (n,) or document.shape != (n,) or ids.ndim != 1
                or (n and (order.min() < 0 or order.max() >= n or document.min() < 0 or document.max() >= len(names)))):
            raise ValueError("the chunk arrays do not fit together")
        ordered = ids[order]
        if n > 1 and not bool(np.all(ordered[1:] > ordered[:-1])):
            raise ValueError("the chunk order does not sort the chunk ids")
        return cls(ids, order, document, names)


@dataclass
class KeywordIndex:
    chunks: ChunkDocuments  # the published chunks and their documents
    digest: str
    _bm25: Any = None
    _documents: Any = None  # BM25 over whole documents (chunk texts joined in reading order)
    _tokens: "ChunkTokens | None" = field(default=None, repr=False)  # kept by a fresh build, for `save`
    # The sentence vectors every indexed chunk carries (rag.ingestion.sentence_store), when an ingest saw to it:
    # the next ingest then need not read each chunk's metadata to find out.
    sentence_format: str | None = None
    saved_format: int = FORMAT  # the format it was read in (an older one is written anew by the next ingest)

    RECORD_FIELDS = ("source",)  # what `from_records` reads of each chunk's metadata

    @property
    def ids(self) -> list[str]:
        """The chunk ids in index order (a new list: the index holds them as an array)."""
        return self.chunks.ids()

    @property
    def sources(self) -> list[str] | None:
        """Each chunk's document, in index order; None in a format-1 index."""
        return self.chunks.sources()

    @property
    def document_names(self) -> list[str]:
        return self.chunks.names

    @property
    def current(self) -> bool:
        """Whether it has the document-level part this version searches with."""
        return self.chunks.known

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]) -> "KeywordIndex":
        """Index chunks, and the documents they make up (`sources`: each chunk's document)."""
        tokens = ChunkTokens()
        tokens.add(ids, texts)
        return cls.from_tokens(ids, tokens, sources)

    @classmethod
    def from_tokens(cls, ids: Sequence[str], tokens: "ChunkTokens", sources: Sequence[str]) -> "KeywordIndex":
        """Index chunks already tokenized (`tokens` holds each id's), and the documents they make up. A
        document is scored as the bag of its chunks' words (BM25 takes no word order), so its tokens are
        its chunks' joined, with no text read or tokenized again."""
        import numpy as np

        bm25 = documents = None
        whole: dict[str, list[str]] = {}
        for chunk_id, source in zip(ids, sources):
            whole.setdefault(source, []).append(chunk_id)
        names = sorted(whole)
        if ids:
            bm25 = _bm25_of([tokens.arrays[i] for i in ids], tokens.vocab)
            documents = _bm25_of([np.concatenate([tokens.arrays[i] for i in whole[n]]) for n in names], tokens.vocab)
        return cls(chunks=ChunkDocuments.of(ids, sources, names), digest=ids_digest(ids), _bm25=bm25,
                   _documents=documents, _tokens=tokens)

    @classmethod
    def from_records(cls, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[dict]) -> "KeywordIndex":
        """Built from chunk records as the store returns them (their metadata names `source`)."""
        return cls.build(ids, texts, [m["source"] for m in metadatas])

    def chunk_tokens(self, directory: Path) -> "ChunkTokens":
        """The tokens of this index's chunks as saved beside it (`directory`: where it was loaded from);
        empty when they were not saved or cannot be read (derived data: the chunks are tokenized again)."""
        if self._tokens is not None:
            return self._tokens
        return ChunkTokens.load(directory, self.ids)

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        """The n best chunks: (chunk id, BM25 score)."""
        return self.search_both(query, n, 0)[0]

    def search_both(self, query: str, chunks: int, documents: int
                    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The best `chunks` chunks (id, score) and `documents` documents (source, score), the query
        tokenized once."""
        if self._bm25 is None or not len(self.chunks):
            return [], []
        return self.search_words(query_words(query), chunks, documents)

    def search_words(self, words: Sequence[str] | Mapping[str, float], chunks: int, documents: int
                     ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """`search_both` for query words already tokenized (stemmed, as `query_words` makes them): a list
        (each occurrence counts once) or word -> weight, BM25 summing each word's score times its weight
        (an expanded query, as `rag.evaluation.retrieval_study` scores pseudo-relevance feedback)."""
        if self._bm25 is None or not len(self.chunks):
            return [], []
        names = self.chunks.names
        return (_top(self._bm25, words, chunks, self.chunks.id_at),
                _top(self._documents, words, documents, names.__getitem__) if self._documents else [])

    def save(self, directory: Path) -> None:
        """Write to a temporary sibling, then swap it in, so readers never see half an index."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._bm25 is not None:
            self._bm25.save(str(tmp / "bm25"))
        if self._documents is not None:
            self._documents.save(str(tmp / "documents"))
        if self._tokens is not None:
            self._tokens.save(tmp, self.ids)
        self.chunks.save(tmp)
        (tmp / "ids.json").write_text(json.dumps({"format": FORMAT, "digest": self.digest, "documents": self.document_names,
                                                  "sentence_format": self.sentence_format}))
        _out_of_page_cache(tmp)
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
            digest, version = str(meta["digest"]), meta.get("format", 1)
            if version >= 3:
                chunks = ChunkDocuments.load(directory, list(meta["documents"]))
            else:  # formats 1 and 2 kept the ids (and, from 2, their documents) in this JSON file
                names = list(meta["documents"]) if version == 2 else []
                chunks = ChunkDocuments.of(list(meta["ids"]), list(meta["sources"]) if version == 2 else None, names)
            # Memory-mapped: a question reads the postings of its own words only, so opening the index
            # costs the same at any size and its pages are shared by every worker on the machine. Safe
            # against ingest, which swaps in a new directory and never rewrites these files in place.
            bm25 = bm25s.BM25.load(str(directory / "bm25"), mmap=True) if len(chunks) else None
            documents = None
            if chunks.known and len(chunks):
                # Both indexes number the same words (see `from_tokens`): one vocabulary serves both,
                # ~9 MB less at 100k chunks. Compared as bytes, so an index where they differ still works.
                vocab = "vocab.index.json"
                shared = (directory / "bm25" / vocab).read_bytes() == (directory / "documents" / vocab).read_bytes()
                documents = bm25s.BM25.load(str(directory / "documents"), mmap=True, load_vocab=not shared)
                if shared:
                    documents.vocab_dict, documents.unique_token_ids_set = bm25.vocab_dict, bm25.unique_token_ids_set
        except Exception as exc:  # bm25s raises whatever numpy or json raises on a damaged file
            raise StoreDamaged(f"the keyword index cannot be read ({type(exc).__name__})") from None
        if digest != chunks.digest():
            raise StoreDamaged("the keyword index does not match its own ids")
        return cls(chunks=chunks, digest=digest, _bm25=_unwrapped(bm25), _documents=_unwrapped(documents),
                   sentence_format=meta.get("sentence_format"), saved_format=version)


def _out_of_page_cache(directory: Path) -> None:
    """Flush the files just written under `directory` and drop their pages from the page cache.

    Readers memory-map the index (`load`), and a file's pages still cached from its writing counted
    far more against a reader than pages read back: at 100k chunks a cold `rag ask` held 45 MB of the
    keyword files' maps with them freshly written, and 3 MB once their pages had been dropped (or read
    back with `read`), `/proc/self/smaps`, twice each. That was most of why a cold ask passed 400 MB
    right after an ingest. Readers then fault in only the pages their questions touch. (Flushed first:
    the kernel drops clean pages only.)"""
    if not hasattr(os, "posix_fadvise"):  # not on macOS or Windows
        return
    for path in directory.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError as exc:  # a filesystem that supports neither loses nothing: the pages just stay
                if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS):
                    raise
            finally:
                os.close(descriptor)


def _bytes_array(texts: Sequence[str]) -> Any:
    """`texts` as one array of UTF-8 byte strings (numpy's "S": fixed width, no per-item object)."""
    import numpy as np

    encoded = [t.encode("utf-8") for t in texts]
    return np.array(encoded, dtype=f"S{max(map(len, encoded), default=1) or 1}")


def _unwrapped(index: Any) -> Any:
    """The memory-mapped score arrays as plain ndarray views of the same pages: every slice of an
    `np.memmap` runs its Python `__array_finalize__`, ~11 % of a served `/retrieve`'s CPU (py-spy)."""
    import numpy as np

    if index is not None:
        index.scores = {k: np.asarray(v) if isinstance(v, np.memmap) else v for k, v in index.scores.items()}
    return index


def _tokenizer_version() -> str:
    """What made saved tokens: tokens from another bm25s or PyStemmer are not mixed with fresh ones."""
    from importlib.metadata import version

    return f"bm25s {version('bm25s')}, PyStemmer {version('PyStemmer')}, {_STEMMER_LANGUAGE}, stop words en"


def _only_used(token_lists: Sequence[Any], vocabulary_size: int) -> tuple[Any, Any]:
    """The token lists joined into one array, renumbered to the words they use, and those words' old ids."""
    import numpy as np

    flat = np.concatenate(token_lists).astype(np.int64) if len(token_lists) else np.zeros(0, np.int64)
    used = np.flatnonzero(np.bincount(flat, minlength=vocabulary_size))
    renumber = np.zeros(vocabulary_size, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    return renumber[flat], used


def _bm25_of(token_lists: Sequence[Any], vocab: Sequence[str]) -> Any:
    """A bm25s index over documents given as token-id arrays into `vocab`, with only the words they use.

    Why not `bm25s.BM25().index(...)`: it counts terms and document frequencies in Python loops, one
    document at a time, ~11 s for the chunk and document indexes at 100k chunks (py-spy). The same
    arithmetic (Lucene BM25, bm25s's defaults) runs here over whole arrays in ~2 s, into the score matrix
    bm25s builds (compressed sparse columns: per word, its documents in order and their scores);
    `tests/test_retrieval.py` holds it equal to bm25s's."""
    import numpy as np

    bm25s = import_bm25s()
    index = bm25s.BM25()
    assert (index.method, index.idf_method) == ("lucene", "lucene"), "the scores below are Lucene's BM25"
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    words, used = _only_used(token_lists, len(vocab))
    n_docs, n_words = len(token_lists), len(used)
    rows = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    # Each (word, document) once with its count, sorted by word then document: the CSC order bm25s keeps.
    pairs, tf = np.unique(words * max(n_docs, 1) + rows, return_counts=True)
    cols, rows = np.divmod(pairs, max(n_docs, 1))
    df = np.bincount(cols, minlength=n_words)
    idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5)).astype(index.dtype)
    tfc = tf / (index.k1 * ((1 - index.b) + index.b * lengths[rows] / max(float(lengths.mean()), 1e-9)) + tf)
    indptr = np.zeros(n_words + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    index.scores = {"data": (idf[cols] * tfc).astype(index.dtype), "indices": rows.astype(index.int_dtype),
                    "indptr": indptr, "num_docs": n_docs}
    index.vocab_dict = {vocab[u]: i for i, u in enumerate(used.tolist())}
    index.vocab_dict.setdefault("", n_words)  # as `index()`: an empty token past the last word
    index.nonoccurrence_array = None
    index.unique_token_ids_set = set(index.vocab_dict.values())
    return index


class ChunkTokens:
    """Each chunk's BM25 tokens (lower-cased, stop words out, stemmed: `bm25s.tokenize` as queries get
    them) as ids into one vocabulary. Saved beside the index, so the next ingest tokenizes only the chunks
    new to it and reads nothing else of the collection: at 100k chunks, reading and tokenizing every
    chunk again took ~27 s of each ingest, however little it added."""

    FILES = ("tokens.npy", "token_offsets.npy", "token_vocab.json")

    def __init__(self) -> None:
        self.vocab: list[str] = []
        self.arrays: dict[str, Any] = {}  # chunk id -> int32 token ids
        self._number: dict[str, int] = {}

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        import numpy as np

        if not ids:
            return
        bm25s = import_bm25s()
        tokenized = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)
        mine = np.zeros(len(tokenized.vocab), dtype=np.int32)  # this call's word ids -> ours
        for word, local in tokenized.vocab.items():
            if word not in self._number:
                self._number[word] = len(self.vocab)
                self.vocab.append(word)
            mine[local] = self._number[word]
        for chunk_id, local_ids in zip(ids, tokenized.ids):
            self.arrays[chunk_id] = mine[np.asarray(local_ids, dtype=np.int64)]

    def save(self, directory: Path, ids: Sequence[str]) -> None:
        import numpy as np

        arrays = [self.arrays[i] for i in ids]
        offsets = np.cumsum([0, *map(len, arrays)]).astype(np.int64)
        # Only these chunks' words are kept: the vocabulary does not grow with deletions.
        renumbered, used = _only_used(arrays, len(self.vocab))
        np.save(directory / self.FILES[0], renumbered.astype(np.int32))
        np.save(directory / self.FILES[1], offsets)
        (directory / self.FILES[2]).write_text(
            json.dumps({"tokenizer": _tokenizer_version(), "vocab": [self.vocab[u] for u in used.tolist()]}),
            encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, ids: Sequence[str]) -> "ChunkTokens":
        import numpy as np

        tokens = cls()
        try:
            flat = np.load(directory / cls.FILES[0])
            offsets = np.load(directory / cls.FILES[1])
            saved = json.loads((directory / cls.FILES[2]).read_text(encoding="utf-8"))
            vocab = saved["vocab"] if saved.get("tokenizer") == _tokenizer_version() else None
            if not isinstance(vocab, list) or len(offsets) != len(ids) + 1 or offsets[-1] != len(flat) or (len(flat) and flat.max() >= len(vocab)):
                return cls()
        except (OSError, ValueError, KeyError, AttributeError):
            return cls()
        tokens.vocab = list(vocab)
        tokens._number = {word: n for n, word in enumerate(tokens.vocab)}
        tokens.arrays = {i: flat[offsets[n]:offsets[n + 1]] for n, i in enumerate(ids)}
        return tokens


def query_words(query: str) -> list[str]:
    """The query's BM25 words, as the chunks' were made (stop words out, stemmed), each as often as it occurs."""
    bm25s = import_bm25s()
    tokens = bm25s.tokenize([query], stopwords="en", stemmer=_stemmer(), show_progress=False)
    word_of = {number: word for word, number in tokens.vocab.items()}
    return [word_of[number] for number in tokens.ids[0]] if tokens.ids else []


def _top(index: Any, words: Sequence[str] | Mapping[str, float], n: int, name_of: Callable[[int], str]
         ) -> list[tuple[str, float]]:
    """The n best of a bm25s index for the query's words (name, score), best first, ties by position.

    Why not bm25s's `retrieve`: a document's BM25 score is the sum, over the query's words, of its entry
    in each word's column of the score matrix, and bm25s adds the columns one by one with `np.add.at`
    under a tqdm loop and its own checks: ~3 ms for both indexes at 100k chunks, 13 % of a served
    `/retrieve`'s CPU on the seeds (py-spy). One `np.bincount` over the same memory-mapped columns takes
    ~0.5 ms at 100k; `tests/test_retrieval.py` holds its scores equal to bm25s's."""
    import numpy as np

    vocab, scores = index.vocab_dict, index.scores
    indptr, indices, data = scores["indptr"], scores["indices"], scores["data"]
    weighted = words.items() if isinstance(words, Mapping) else ((w, 1.0) for w in words)
    columns = [(vocab[w], weight) for w, weight in weighted
               if vocab.get(w, len(indptr)) < len(indptr) - 1]  # (bm25s's "" has none)
    if n <= 0 or not columns:
        return []
    spans = [(int(indptr[c]), int(indptr[c + 1]), weight) for c, weight in columns]
    values = [data[a:b] if weight == 1.0 else data[a:b] * weight for a, b, weight in spans]
    total = np.bincount(np.concatenate([indices[a:b] for a, b, _ in spans]),
                        weights=np.concatenate(values), minlength=int(scores["num_docs"]))
    n = min(n, len(total))
    best = np.argpartition(-total, n - 1)[:n] if n < len(total) else np.arange(len(total))
    best = best[np.lexsort((best, -total[best]))]
    return [(name_of(int(d)), float(total[d])) for d in best.tolist() if total[d] > 0]
