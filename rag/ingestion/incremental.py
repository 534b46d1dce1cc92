"""The incremental ingest pipeline: files -> clean documents -> chunks with offsets -> Chroma + BM25.

Chroma is the truth of what is embedded: a chunk is embedded only when its id (derived from its
source and text) is not in the collection yet, so re-runs, edits and interrupted runs embed only
what is missing. The manifest (document metadata, MinHash signatures, duplicate groups) and the
keyword index are written after the collection, atomically.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from rag.ingestion import injection, sentence_store
from rag.config import Settings
from rag.ingestion.documents import (SUPPORTED_SUFFIXES, Document, clean_files, cleaning_id, line_counts,
                                     minhash_signature, near_duplicate_groups, read_files, regroup_near_duplicates,
                                     repeated_keys, short_line_keys)
from rag.errors import EmbeddingFailed, InputRejected, RagError, StoreBusy, StoreDamaged
from rag.retrieval.keyword import FORMAT, ChunkTokens, KeywordIndex, ids_digest
from rag.ingestion.manifest import Manifest
from rag.text import is_valid_text

ProgressCallback = Callable[[int, int], None]  # (documents indexed so far, documents to index)
EMBED_BATCH = 512  # chunks per model call and per Chroma write (see _embed_and_store)
FIRST_BATCH = 64
# Kept chunks whose metadata changes (a document re-described, rules changed) are updated this many at a
# time: one Chroma update per document wrote ~0.5 MB each, 13 min for a 100k-chunk index.
METADATA_BATCH = 512
# Vectors kept for reuse within one ingest run (EmbeddingCache): a bound on its memory, ~160 MB.
EMBED_CACHE = 100_000
# Up to this share of documents added, changed or removed, near-duplicate groups are updated rather than
# made again: ~10 ms per changed document against ~8 s for all 35k (measured), so about where they cross.
REGROUP_SHARE = 0.02


@dataclass
class Chunk:
    id: str
    text: str
    start: int
    end: int
    index: int


@dataclass
class IngestReport:
    documents: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    embedded_chunks: int = 0
    sentence_vectors_added: int = 0  # chunks of an older index given their sentence vectors
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chunk_document(doc: Document, settings: Settings) -> list[Chunk]:
    """Token-aware chunks (SentenceSplitter on cl100k) with exact character offsets into doc.text."""
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.utils import get_tokenizer  # cl100k_base from llama-index's bundled cache

    splitter = SentenceSplitter(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                                tokenizer=get_tokenizer())
    chunks: list[Chunk] = []
    seen: Counter[str] = Counter()
    cursor = 0
    for piece in splitter.split_text(doc.text):
        start = _locate(doc.text, piece, cursor)
        end = start + len(piece)
        seen[piece] += 1
        digest = hashlib.sha256(f"{doc.source}\0{piece}\0{seen[piece]}".encode()).hexdigest()[:32]
        chunks.append(Chunk(id=digest, text=doc.text[start:end], start=start, end=end, index=len(chunks)))
        cursor = start + 1
    return chunks


def _locate(text: str, piece: str, cursor: int) -> int:
    # The splitter returns verbatim slices of the text; overlap means the next one starts before the
    # previous one ends, so search from just after the previous start.
    found = text.find(piece, cursor)
    if found < 0:
        found = text.find(piece)
    if found < 0:
        raise AssertionError(f"chunk not found verbatim in its document: {piece[:60]!r}")
    return found


def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[dict[str, str]], list[Path]]:
    """Files under the given paths (sorted), per-path problems, and the roots that were scanned."""
    files: list[Path] = []
    skipped: list[dict[str, str]] = []
    roots: list[Path] = []
    for path in paths:
        if not path.exists():
            skipped.append({"path": str(path), "reason": "not found"})
            continue
        roots.append(path.resolve())
        if path.is_file():
            files.append(path)
            continue
        for candidate in sorted(path.rglob("*")):
            relative = candidate.relative_to(path)
            if any(part.startswith(".") for part in relative.parts) or not candidate.is_file():
                continue
            if candidate.is_symlink() and not candidate.resolve().is_relative_to(path.resolve()):
                skipped.append({"path": str(candidate), "reason": "symlink points outside the corpus directory"})
            elif candidate.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append({"path": str(candidate), "reason": f"unsupported file type {candidate.suffix or '(none)'!r}"})
            else:
                files.append(candidate)
    return _one_path_per_file(files, skipped), skipped, roots


def _one_path_per_file(files: list[Path], skipped: list[dict[str, str]]) -> list[Path]:
    """Each real file once, under the first path that named it (a symlink to another corpus file, or a
    file named twice, is the same document); a name that is not valid UTF-8 is skipped with a reason."""
    seen: dict[Path, Path] = {}
    for path in files:
        if not is_valid_text(str(path)):
            skipped.append({"path": str(path).encode("utf-8", "replace").decode(),
                            "reason": "the file name is not valid UTF-8; rename the file"})
            continue
        real = path.resolve()
        if real in seen:
            if path != seen[real]:
                skipped.append({"path": str(path), "reason": f"the same file as {seen[real]}"})
            continue
        seen[real] = path
    return list(seen.values())


def display_path(path: Path, cwd: Path | None = None) -> str:
    """The path as a user would type it: relative to the working directory (`cwd`, resolved, when the
    caller has it) when inside it."""
    # (resolve() costs a system call per path component: ~40 us, ~1.4 s per pass over 34k files)
    resolved = path if path.is_absolute() and cwd is not None else path.resolve()
    try:
        return str(resolved.relative_to(cwd or Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def ingest(paths: Sequence[Path] | None = None, settings: Settings | None = None, *, rebuild: bool = False,
           progress: ProgressCallback | None = None) -> IngestReport:
    """Index files or directories (default: the corpus directory and the uploads folder). One writer
    at a time."""
    settings = settings or Settings.from_env()
    default = [settings.corpus_dir] + ([settings.uploads_dir] if settings.uploads_dir.is_dir() else [])
    with _writer(settings):
        return _ingest_locked([Path(p) for p in (paths or default)], settings, rebuild, progress)


@contextmanager
def _writer(settings: Settings) -> Iterator[None]:
    """The data dir's write lock: one ingest or removal at a time, a clear error for the second."""
    from filelock import FileLock, Timeout

    settings.check_data_dir(write=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.data_dir / "ingest.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StoreBusy(f"another ingest is running on {settings.data_dir}; try again when it finishes") from None
    try:
        yield
    finally:
        lock.release()


def remove(sources: Sequence[str], settings: Settings) -> int:
    """Take documents (named by their `source`, as `rag sources` lists them) out of the index; their
    files are left where they are. Returns how many chunks went. Published like an ingest: readers see
    the old index or the new one, never half of each."""
    from rag.embedding.models import embedding_dimension
    from vectorstore import open_store

    with _writer(settings):
        manifest = Manifest(settings.data_dir)
        keys = {key for key, entry in manifest.documents.items() if entry["source"] in set(sources)}
        unknown = set(sources) - {manifest.documents[key]["source"] for key in keys}
        if unknown:
            raise InputRejected(f"not an indexed document: {', '.join(sorted(unknown))}")
        store = open_store(settings, settings.embed_model, embedding_dimension(settings.embed_model))
        sentence_format = sentence_store.FORMAT
        current = _published_keyword_index(settings)
        stored = StoredChunks.read(store, sentence_format, current, _key_of_source(manifest))
        stale = set().union(*(stored.ids_of(key) for key in keys))
        for key in keys:
            del manifest.documents[key]
        for entry in manifest.documents.values():
            entry["duplicates"] = [s for s in entry.get("duplicates", []) if s not in set(sources)]
        published = _refresh_keyword_index(store, settings.data_dir / "keyword", current, stale, set(manifest.documents),
                                           stored.path_of, None if stored.lacking_sentence_vectors else sentence_format)
        manifest.save()
        store.publish(ids_digest(published))
        store.delete(stale)
        return len(stale)


def _ingest_locked(paths: list[Path], settings: Settings, rebuild: bool,
                   progress: ProgressCallback | None) -> IngestReport:
    from rag.embedding.models import embedding_dimension, get_embedder
    from vectorstore import open_store, reset_store

    started = time.perf_counter()
    report = IngestReport()
    files, report.skipped, roots = expand_paths(paths)
    if rebuild and not _rebuilds_in_place(settings):
        _forget_derived_state(settings.data_dir)
        reset_store(settings)
    store = open_store(settings, settings.embed_model, embedding_dimension(settings.embed_model))
    settings = settings.replace(passage_precision=store.passage_precision)  # unset: embed as the index did
    # A rebuild reads nothing of the old manifest: every document is described and embedded afresh.
    manifest = Manifest(settings.data_dir, empty=rebuild)

    # Chunks that go are deleted only after the new chunk set is published, so a reader always has a
    # whole index: the old one until the keyword index and manifest are swapped in, the new one after.
    stale: set[str] = set()
    sentence_format = sentence_store.FORMAT
    current = _published_keyword_index(settings)  # (read once: the plan and the refresh below both use it)
    stored = StoredChunks.read(store, sentence_format, current, _key_of_source(manifest))
    before = {key: (entry["source"], entry["signature"], entry.get("duplicates", []))
              for key, entry in manifest.documents.items()}
    cleaning_before = {key: _cleaning_record(entry) for key, entry in manifest.documents.items()}
    keyed, unread, stats, unreadable = _read_documents(files, roots, manifest, stored, settings, rebuild)
    report.skipped += unreadable
    _remove_deleted(manifest, stored, roots, {key for key, _ in keyed} | set(unread), report, stale)
    as_is: set[str] = set()
    plan = _plan(keyed, manifest, store, stored, settings, report, stale, reembed=rebuild, as_is=as_is,
                 unread=unread, stats=stats)
    report.embedded_chunks = _embed_and_store(plan, len(keyed) + len(unread), store, stored,
                                              lambda: get_embedder(settings), settings, progress)
    report.sentence_vectors_added = _add_missing_sentence_vectors(store, sorted(stored.lacking_sentence_vectors),
                                                                  lambda: get_embedder(settings))

    _group_near_duplicates(manifest, settings.dup_threshold, before)
    report.duplicates = {e["source"]: e["duplicates"] for e in manifest.documents.values() if e["duplicates"]}

    published = _refresh_keyword_index(store, settings.data_dir / "keyword", current, stale, set(manifest.documents),
                                       stored.path_of, sentence_format, reuse=not rebuild)
    unchanged = (len(as_is) == len(keyed) + len(unread) and not stale and not report.sentence_vectors_added
                 and before == {k: (e["source"], e["signature"], e["duplicates"]) for k, e in manifest.documents.items()}
                 and cleaning_before == {k: _cleaning_record(e) for k, e in manifest.documents.items()})
    if not (unchanged and store.publication()[0] == ids_digest(published)):
        # (An ingest that changed nothing rewrites nothing, and servers have no new index to reload.)
        manifest.save()
        store.publish(ids_digest(published))
    # Now nothing outside the published set is needed: stale chunks, and any an interrupted run left behind.
    store.delete(set(stored.path_of) - set(published))
    report.documents = len(manifest.documents)
    report.chunks = store.count()
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _read_documents(files: list[Path], roots: list[Path], manifest: Manifest, stored: "StoredChunks",
                    settings: Settings, rebuild: bool
                    ) -> tuple[list[tuple[str, Document]], list[str], dict[str, list[int] | None], list[dict[str, str]]]:
    """Read and clean the files that need it: (key, document) for each (the key is the absolute path, the
    manifest's), the keys of the files left unread, each file's stat to record, and the unreadable files.

    A file is left unread when the last ingest read it at this size and mtime (as make and git judge a
    file unchanged), cleaned it with these rules, indexed it as it is, and the lines that other documents
    carry among its short lines are still those its cleaning dropped: its cleaned text could only be what
    it was. At 35k articles reading and decoding every file was ~9 s of a 19 s no-op re-ingest."""
    cwd = Path.cwd().resolve()
    stats: dict[str, list[int] | None] = {}
    maybe_unread: dict[str, Path] = {}
    to_read: list[Path] = []
    now = time.time_ns()
    for path in files:
        key = str(path.resolve())
        try:
            st = path.stat()
        except OSError:
            to_read.append(path)  # (reading it will say why it cannot be)
            continue
        # A file changed within two seconds of being looked at may change again within the same mtime
        # tick (coarse file-system clocks): "racy", as git calls it, so it is not recorded, and read next time.
        stats[key] = [st.st_size, st.st_mtime_ns] if now - st.st_mtime_ns > 2_000_000_000 else None
        entry = manifest.documents.get(key)
        if (not rebuild and entry and stats[key] is not None and entry.get("stat") == stats[key]
                and entry.get("cleaned_with") == cleaning_id()  # (written with short_lines and repeated_lines)
                and entry.get("source") == display_path(Path(key), cwd)
                and _indexed_with_these_rules(entry, stored.ids_of(key), settings)
                and (settings.data_dir / "texts" / f"{entry.get('content_hash')}.txt").exists()):
            maybe_unread[key] = path
        else:
            to_read.append(path)
    raw, unreadable = read_files(to_read, settings.max_file_bytes)
    elsewhere = _short_lines_elsewhere(manifest, roots)
    counts = line_counts([*(short_line_keys(text).split() for text in raw.values()),
                          *(manifest.documents[key]["short_lines"].split() for key in maybe_unread),
                          *(lines.split() for lines in elsewhere)])
    # (Reading one of these changes no count: its lines are the ones the manifest holds.)
    still = {key: repeated_keys(manifest.documents[key]["short_lines"], counts) == manifest.documents[key]["repeated_lines"]
             for key in maybe_unread}
    unread = [key for key in maybe_unread if still[key]]
    more, more_unreadable = read_files([path for key, path in maybe_unread.items() if not still[key]],
                                       settings.max_file_bytes)
    raw.update(more)
    docs = clean_files(raw, [*elsewhere, *(manifest.documents[key]["short_lines"] for key in unread)])
    return ([(str(Path(d.source).resolve()), d) for d in docs], unread, stats, unreadable + more_unreadable)


def _cleaning_record(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What the manifest keeps of a document's reading and cleaning (see `_read_documents`)."""
    return (entry.get("stat"), entry.get("short_lines"), entry.get("repeated_lines"), entry.get("cleaned_with"))


def _cleaning_fields(doc: Document, stat: list[int] | None) -> dict[str, Any]:
    return {"stat": stat, "short_lines": doc.short_lines, "repeated_lines": doc.repeated_lines,
            "cleaned_with": cleaning_id()}


def _short_lines_elsewhere(manifest: Manifest, roots: list[Path]) -> list[str]:
    """The `short_lines` of the indexed documents this ingest does not read: those outside the paths it
    was given (documents under them are read now, or gone)."""
    return [entry.get("short_lines", "") for key, entry in manifest.documents.items()
            if not any(Path(key).is_relative_to(root) for root in roots)]


def _published_keyword_index(settings: Settings) -> KeywordIndex | None:
    try:
        return KeywordIndex.load(settings.data_dir / "keyword")
    except StoreDamaged:
        return None  # derived data, built again by the ingest


def _key_of_source(manifest: Manifest) -> dict[str, str]:
    """Each source's document key, for the sources only one document has."""
    count = Counter(entry["source"] for entry in manifest.documents.values())
    return {entry["source"]: key for key, entry in manifest.documents.items() if count[entry["source"]] == 1}


def _group_near_duplicates(manifest: Manifest, threshold: float,
                           before: dict[str, tuple[str, str, list[str]]]) -> None:
    """Each document's near-duplicates (by source). `before`: each document's (source, signature,
    near-duplicates) when the ingest started. When those were grouped with this threshold (the
    manifest's `duplicates_key` says so), the groups found then are kept and only the documents added,
    changed or removed since are compared with the rest (rag.ingestion.documents.regroup_near_duplicates): grouping
    35k documents again took ~13 s of every ingest into a large index, however little it changed."""
    entries = manifest.documents
    key = _grouping_key(threshold, ((k, e["source"], e["signature"]) for k, e in entries.items()))
    previous_key = _grouping_key(threshold, ((k, source, signature) for k, (source, signature, _) in before.items()))
    signatures = {k: entry["signature"] for k, entry in entries.items()}
    sources = {source: k for k, (source, _, _) in before.items()}
    if manifest.duplicates_key == previous_key and len(sources) == len(before):
        changed = {k for k, e in entries.items() if before.get(k, (None, None))[:2] != (e["source"], e["signature"])}
        changed |= set(before) - set(entries)
        if not changed:
            groups = {k: [sources[s] for s in before[k][2]] for k in entries}
        elif len(changed) <= REGROUP_SHARE * len(entries):
            groups = regroup_near_duplicates(signatures, threshold, {k: [sources[s] for s in found if s in sources]
                                                                     for k, (_, _, found) in before.items()}, changed)
        else:
            groups = near_duplicate_groups(signatures, threshold)
    else:
        groups = near_duplicate_groups(signatures, threshold) if signatures else {}
    for k, entry in entries.items():
        entry["duplicates"] = [entries[o]["source"] for o in groups.get(k, [])]
    manifest.duplicates_key = key


def _grouping_key(threshold: float, documents: Iterable[tuple[str, str, str]]) -> str:
    """What near-duplicate groups depend on: the threshold and each document's (key, source, signature)."""
    import json

    return hashlib.sha256(json.dumps([threshold, sorted(documents)]).encode()).hexdigest()


def _rebuilds_in_place(settings: Settings) -> bool:
    """Whether a rebuild can write the new index beside the old one, so readers keep the old one until
    the new one is published: yes when the store is whole (probed in a child process, which a damaged
    store may crash) and built with the current model at the current passage precision. Otherwise it is
    dropped first."""
    from rag.serving.health import check_store

    try:
        if not check_store(settings).ok:
            return False
        from rag.embedding.models import embedding_dimension
        from vectorstore import open_store

        store = open_store(settings, settings.embed_model, embedding_dimension(settings.embed_model), create=False)
        return settings.passage_precision in (None, store.passage_precision)
    except RagError:  # another model, or no collection yet
        return False


class StoredChunks:
    """What the collection holds, read in one paged scan when an ingest starts and kept current as it
    writes: each chunk's document path, and which chunks lack sentence vectors. The plan, the back-fill of
    sentence vectors, the keyword index and the final clean-up all read this rather than the collection:
    at 100k chunks one scan takes ~10 s, and a look-up per document ~10 ms (a no-op re-ingest of 34k
    documents spent 455 s in them)."""

    def __init__(self) -> None:
        self.path_of: dict[str, str] = {}
        self.lacking_sentence_vectors: set[str] = set()
        self._by_path: dict[str, set[str]] = {}

    @classmethod
    def read(cls, store: Any, sentence_format: str, published: KeywordIndex | None = None,
             key_of_source: dict[str, str] | None = None) -> "StoredChunks":
        """`sentence_format`: the sentence vectors this ingest writes (chunks with none or others lack
        them). The chunks of the `published` keyword index, when it is the store's published one and its
        chunks all carry that format, take their document from it (`key_of_source`: the manifest's
        document key of each source): only their ids are read, ~2 s at 100k chunks against ~9 s for
        every chunk's metadata. Any other chunk (left by an interrupted run, say) is read whole."""
        stored = cls()
        if not store.count():  # a first ingest has nothing to read
            return stored
        ids = store.all_ids()
        known: dict[str, str] = {}
        if (published is not None and key_of_source and published.sentence_format == sentence_format
                and published.digest == store.publication()[0]):
            source_of = dict(zip(published.ids, published.sources or []))
            for chunk_id in ids:
                key = key_of_source.get(source_of.get(chunk_id, ""))
                if key is not None:
                    known[chunk_id] = key
        for chunk_id, key in known.items():
            stored.add(chunk_id, key)
        rest = [i for i in ids if i not in known]
        wanted = ("path", sentence_store.FORMAT_KEY)
        if len(rest) > len(ids) // 2:
            fields = store.all_fields(wanted)
        else:
            fields = [(i, meta) for i, (_, meta) in (store.get(rest, wanted) if rest else {}).items()]
        for chunk_id, meta in fields:
            if chunk_id not in known:
                stored.add(chunk_id, meta["path"] or "", meta[sentence_store.FORMAT_KEY] == sentence_format)
        return stored

    def add(self, chunk_id: str, path: str, has_sentence_vectors: bool = True) -> None:
        self.path_of[chunk_id] = path
        self._by_path.setdefault(path, set()).add(chunk_id)
        if has_sentence_vectors:
            self.lacking_sentence_vectors.discard(chunk_id)
        else:
            self.lacking_sentence_vectors.add(chunk_id)

    def ids_of(self, path: str) -> set[str]:
        """The ids of the chunks stored for the document at `path` (its absolute path)."""
        return set(self._by_path.get(path, ()))


def _plan(docs: list[tuple[str, Document]], manifest: Manifest, store: Any, stored: StoredChunks,
          settings: Settings, report: IngestReport, stale: set[str], reembed: bool = False,
          as_is: set[str] | None = None, unread: Sequence[str] = (), stats: dict[str, list[int] | None] | None = None
          ) -> Iterator[tuple[str, Document | None, list[Chunk]]]:
    """Per document (with its key, the absolute path): note chunks that went (in `stale`), refresh the
    metadata of those that stay, yield the new ones (lazily: documents are chunked while the model embeds
    the ones before). A document whose cleaned text, description, chunker and scan rules are those of
    the last ingest, with all its chunks stored, is not chunked again: it yields nothing (and its key is
    added to `as_is`); so does each file left `unread` (rag.ingestion.incremental._read_documents)."""
    for key in unread:
        report.unchanged += 1
        if as_is is not None:
            as_is.add(key)
        yield key, None, []
    described: dict[str, dict[str, Any]] = {}  # kept chunks' new metadata, written METADATA_BATCH at a time

    def write_described() -> None:
        store.update_metadata(list(described), list(described.values()))
        described.clear()

    cwd = Path.cwd().resolve()
    for key, doc in docs:
        doc.source = display_path(Path(key), cwd)
        previous = manifest.documents.get(key)
        present = stored.ids_of(key)
        if not reembed and _indexed_as_is(doc, previous, present, settings):
            report.unchanged += 1
            if as_is is not None:
                as_is.add(key)
            previous.update(_cleaning_fields(doc, (stats or {}).get(key)))  # (read again: as it is now)
            _save_text(settings.data_dir, doc)  # (a cheap check: it is there unless someone deleted it)
            yield key, doc, []
            continue
        chunks = chunk_document(doc, settings)
        ids = [c.id for c in chunks]
        fresh = chunks if reembed else [c for c in chunks if c.id not in present]
        kept = [] if reembed else [c for c in chunks if c.id in present]
        stale |= present - set(ids)
        unchanged = bool(previous) and not fresh and all(
            previous.get(field) == value for field, value in _describe(doc).items())
        if unchanged:
            report.unchanged += 1
        else:
            report.updated += bool(previous)
            report.added += not previous
        if not unchanged or previous.get("scanned_with") != _scan_id(settings):  # (or the rules changed)
            # update() merges keys: a finding that went is cleared explicitly
            cleared = {injection.SPANS_KEY: None, injection.TERMS_KEY: None}
            described.update((c.id, {**cleared, **_chunk_metadata(doc, key, c, settings)}) for c in kept)
            if len(described) >= METADATA_BATCH:
                write_described()
        manifest.documents[key] = {
            **_describe(doc), "chunks": len(chunks), "chunker": settings.chunker_id,
            "scanned_with": _scan_id(settings),
            "signature": minhash_signature(doc.text), "duplicates": [],
            "dropped_lines": len(doc.dropped_lines), **_cleaning_fields(doc, (stats or {}).get(key)),
        }
        _save_text(settings.data_dir, doc)
        yield key, doc, fresh
    write_described()


def _indexed_as_is(doc: Document, previous: dict[str, Any] | None, present: set[str], settings: Settings) -> bool:
    """Whether the last ingest left this document exactly as this one would: same description (its
    cleaned text's hash among it), chunker and scan rules, and as many chunks stored as it made."""
    return (_indexed_with_these_rules(previous, present, settings)
            and all(previous.get(field) == value for field, value in _describe(doc).items()))


def _indexed_with_these_rules(previous: dict[str, Any] | None, present: set[str], settings: Settings) -> bool:
    """Whether the last ingest indexed a document (its manifest entry) with this chunker and these scan
    rules, and as many of its chunks as it made are stored."""
    return (bool(previous) and previous.get("chunker") == settings.chunker_id
            and previous.get("scanned_with") == _scan_id(settings) and len(present) == previous.get("chunks"))


def _describe(doc: Document) -> dict[str, Any]:
    """What the manifest and every chunk's metadata say about a document; a change means re-describe."""
    return {"source": doc.source, "title": doc.title, "content_hash": doc.content_hash,
            "publisher": doc.publisher, "author": doc.author, "date": doc.date}


def _forget_derived_state(data_dir: Path) -> None:
    import shutil

    for name in ("keyword", "texts"):
        shutil.rmtree(data_dir / name, ignore_errors=True)
    Manifest(data_dir, empty=True).forget()


def _save_text(data_dir: Path, doc: Document) -> None:
    """Keep the cleaned text that citation offsets point into (named by its hash, written once)."""
    path = data_dir / "texts" / f"{doc.content_hash}.txt"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(doc.text, encoding="utf-8")
        os.replace(tmp, path)


def _remove_deleted(manifest: Manifest, stored: StoredChunks, roots: list[Path], seen: set[str],
                    report: IngestReport, stale: set[str]) -> None:
    for key in list(manifest.documents):
        path = Path(key)
        if key in seen or path.exists() or not any(path.is_relative_to(r) for r in roots):
            continue
        stale |= stored.ids_of(key)
        del manifest.documents[key]
        report.removed += 1


def _chunk_metadata(doc: Document, key: str, chunk: Chunk, settings: Settings) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": doc.source, "path": key, "title": doc.title,
                            "content_hash": doc.content_hash, "start": chunk.start, "end": chunk.end,
                            "chunk_index": chunk.index}
    meta.update({k: v for k, v in (("publisher", doc.publisher), ("author", doc.author), ("date", doc.date)) if v})
    found = _instructions(doc.content_hash, doc.text, _classifier(settings))
    meta.update(injection.chunk_metadata(found, chunk.start, chunk.end))
    return meta


_CLASSIFIERS: dict[tuple[str, str], injection.Classifier] = {}


def _classifier(settings: Settings) -> injection.Classifier | None:
    """The learned instruction classifier when it is switched on and the model is the bundled MiniLM (its
    weights were fitted for that model); None: the patterns decide alone."""
    from rag.config import LOCAL_EMBED_MODEL
    from rag.embedding.models import get_embedder

    if not settings.injection_classifier or settings.embed_model != LOCAL_EMBED_MODEL:
        return None
    key = (settings.embed_model, settings.embed_runtime)
    if key not in _CLASSIFIERS:
        # float32 vectors whatever the index stores: its weights and operating point were fitted on them
        _CLASSIFIERS[key] = injection.instruction_classifier(get_embedder(settings.replace(passage_precision="float32")))
    return _CLASSIFIERS[key]


def _scan_id(settings: Settings) -> str:
    """The rules a document is scanned with at ingest: the patterns, and the classifier when it is on."""
    return injection.rules_id() + ("+classifier" if _classifier(settings) is not None else "")


@lru_cache(maxsize=64)
def _instructions(content_hash: str, text: str, classifier: injection.Classifier | None) -> injection.Findings:
    """Instruction-like text in a document, found once per document (not once per chunk)."""
    return injection.scan(text, classifier=classifier)


def _embed_and_store(plan: Iterable[tuple[str, Document | None, list[Chunk]]], documents: int, store: Any,
                     stored: StoredChunks, embedder_of: Callable[[], Any], settings: Settings,
                     progress: ProgressCallback | None) -> int:
    """Embed and store the planned chunks, with their sentences' vectors (rag.ingestion.sentence_store); returns how
    many chunks were embedded.

    The model runs in a worker thread on one batch while this thread chunks the next documents and writes
    the batch before to Chroma (ONNX Runtime and Chroma release the GIL), so indexing runs at the model's
    speed. A batch is written whole, after its vectors: a failure mid-run leaves whole batches behind, and
    the next run embeds only the chunks still missing."""
    from bisect import bisect_right
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: list[tuple[str, Document, Chunk]] = []  # (document key, document, chunk)
    ends: list[int] = []  # per planned document, how many chunks were planned up to its end
    planned = written = 0
    in_flight: tuple[list[tuple[str, Document, Chunk]], list[list[Any]], list[str], Future] | None = None
    cache = EmbeddingCache()

    def write(batch: list[tuple[str, Document, Chunk]], spans: list[list[Any]], texts: list[str],
              future: Future) -> None:
        nonlocal written
        table = dict(zip(texts, future.result()))
        vectors = [table[c.text] for _, _, c in batch]
        sentences = sentence_store.encode_all(spans, table)
        metadatas = [{**_chunk_metadata(d, key, c, settings), **sentence_store.metadata(s)}
                     for (key, d, c), s in zip(batch, sentences)]
        store.upsert([c.id for _, _, c in batch], vectors, [c.text for _, _, c in batch], metadatas)
        for key, _, chunk in batch:
            stored.add(chunk.id, key)
        written += len(batch)

    with ThreadPoolExecutor(1, thread_name_prefix="embed") as model:
        def submit(batch: list[tuple[str, Document, Chunk]]) -> None:
            nonlocal in_flight
            # The model thread only runs the model: sentence splitting and encoding happen here, while
            # it embeds the batch before.
            spans = [sentence_store.spans_of(c.text, c.start) for _, _, c in batch]
            texts = list(dict.fromkeys([*(c.text for _, _, c in batch), *sentence_store.distinct_texts(spans)]))
            future = model.submit(cache.embed, embedder_of(), texts)
            if in_flight:
                write(*in_flight)
            in_flight = (batch, spans, texts, future)

        for key, doc, fresh in plan:
            pending.extend((key, doc, chunk) for chunk in fresh)
            planned += len(fresh)
            ends.append(planned)
            # A small first batch starts the model early; later ones are big, so that sorting a batch by
            # length leaves little padding (64 chunks per model call padded 6 % of the word pieces, 512
            # chunks 1 %, and the model ran ~9 % faster on the same texts; batches are written whole).
            while len(pending) >= (size := EMBED_BATCH if in_flight else FIRST_BATCH):
                batch, pending = pending[:size], pending[size:]
                submit(batch)
            if progress:
                progress(bisect_right(ends, written), documents)
        if pending:
            submit(pending)
        if in_flight:
            write(*in_flight)
    if progress:
        progress(documents, documents)
    return planned


class EmbeddingCache:
    """The vectors of texts already embedded in this run, by content hash, so a text repeated anywhere in
    the run is embedded once. News repeats itself: wire copy carried by several outlets, versions of one
    report, boilerplate sentences under every article. At most `capacity` vectors are kept (float32,
    ~1.6 KB each: 160 MB at the default), the least recently used dropped first."""

    def __init__(self, capacity: int = EMBED_CACHE) -> None:
        from collections import OrderedDict

        self.capacity = capacity
        self.hits = self.misses = 0
        self._vectors: OrderedDict[bytes, Any] = OrderedDict()

    def embed(self, embedder: Any, texts: list[str]) -> list[list[float]]:
        """The texts' vectors; the model runs only on those not seen before (each distinct one once)."""
        import numpy as np

        keys = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts]
        missing = {k: t for k, t in zip(keys, texts) if k not in self._vectors}
        if missing:
            fresh = _embed_batch(embedder, list(missing.values()))
            self._vectors.update(zip(missing, np.asarray(fresh, dtype=np.float32)))
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        vectors = [self._vectors[k].tolist() for k in keys]
        for k in keys:
            self._vectors.move_to_end(k)
        while len(self._vectors) > self.capacity:
            self._vectors.popitem(last=False)
        return vectors


def _add_missing_sentence_vectors(store: Any, lacking: list[str], embedder_of: Callable[[], Any]) -> int:
    """Chunks stored before sentence vectors were (an older index) get them now, without re-embedding
    the chunks themselves. Returns how many chunks were updated."""
    cache = EmbeddingCache()  # as in an ingest: a sentence repeated across chunks is embedded once
    for i in range(0, len(lacking), EMBED_BATCH):
        ids = lacking[i : i + EMBED_BATCH]
        records = store.get(ids)
        ids = [j for j in ids if j in records]
        chunks = [(records[j][0], int(records[j][1].get("start", 0))) for j in ids]
        encoded = sentence_store.embed_chunks(chunks, partial(cache.embed, embedder_of()))
        store.update_metadata(ids, [sentence_store.metadata(e) for e in encoded])
    return len(lacking)


def _embed_batch(embedder: Any, texts: list[str]) -> list[Any]:
    try:
        if hasattr(embedder, "embed_batch"):  # the ONNX MiniLM: one call, sorted by length across all texts
            return embedder.embed_batch(texts)
        return embedder.get_text_embedding_batch(texts)
    except RagError:
        raise
    except Exception as exc:  # the model or the embedding endpoint failed mid-run
        raise EmbeddingFailed(f"embedding failed ({type(exc).__name__}: {exc}); every chunk stored so far is kept "
                              "and the next `rag ingest` embeds only what is missing") from exc


def _refresh_keyword_index(store: Any, directory: Path, current: KeywordIndex | None, exclude: set[str],
                           documents: set[str], path_of: dict[str, str], sentence_format: str | None,
                           reuse: bool = True) -> list[str]:
    """Build the keyword index over the chunks of the manifest's documents (less `exclude`; `path_of`:
    each stored chunk's document) unless `current`, the one saved in `directory` (None: none, or
    damaged), already is it; returns its ids, the chunk set being published. Chunks of no listed
    document (left by an interrupted run) are never published. `sentence_format`: the sentence vectors
    all of them carry, recorded with the index (None: not known)."""
    ids = sorted(i for i, path in path_of.items() if i not in exclude and path in documents)
    if (current is not None and current.current and current.digest == ids_digest(ids)
            and current.sentence_format == sentence_format and current.saved_format == FORMAT):
        return current.ids
    # The chunks the last index had keep their tokens and documents; only new ones are read and tokenized.
    reuse = reuse and current is not None and current.current  # (`rag ingest --rebuild` tokenizes every chunk)
    tokens = current.chunk_tokens(directory) if reuse else ChunkTokens()
    source_of = dict(zip(current.ids, current.sources or [])) if reuse else {}
    new = [i for i in ids if i not in tokens.arrays or i not in source_of]
    records = store.get(new, KeywordIndex.RECORD_FIELDS) if new else {}
    tokens.add(list(records), [text for text, _ in records.values()])
    source_of.update({i: meta["source"] for i, (_, meta) in records.items()})
    kept = [i for i in ids if i in tokens.arrays and i in source_of]  # (a chunk deleted meanwhile is left out)
    index = KeywordIndex.from_tokens(kept, tokens, [source_of[i] for i in kept])
    index.sentence_format = sentence_format
    index.save(directory)
    return index.ids
