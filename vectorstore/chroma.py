"""Opening the chunk collection and holding it to the model/dimension contract.

The collection's metadata records the embedding model, its dimension and the chunker.
Chroma's default embedding function is never used (it downloads a model): we always pass vectors.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, TypeVar

from rag.config import Settings
from rag.errors import ConfigError, StoreDamaged, StoreMismatch, StoreUnavailable

F = TypeVar("F", bound=Callable[..., Any])


def _store_failure(exc: Exception) -> bool:
    """Chroma failing (its own errors, a dropped connection), as opposed to a bug of ours."""
    import chromadb.errors
    import httpx

    if isinstance(exc, (chromadb.errors.ChromaError, httpx.HTTPError, ConnectionError, TimeoutError)):
        return True
    return isinstance(exc, ValueError) and "connect" in str(exc).lower()


def _guarded(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: "ChunkStore", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if self.embedded and _damage(exc):
                raise StoreDamaged(f"the Chroma store failed: {type(exc).__name__}: {str(exc)[:200]}") from None
            if not _store_failure(exc):
                raise
            raise StoreUnavailable(f"search unavailable: the Chroma store failed ({type(exc).__name__}: {exc})") from None

    return wrapper  # type: ignore[return-value]


def _damage(exc: Exception) -> bool:
    """An embedded store's own files failing: Chroma's errors, SQLite's, the file system's. (A server's
    failures are the network's or the server's, reported as unavailable, not damaged.)"""
    import sqlite3

    return _store_failure(exc) or isinstance(exc, (sqlite3.Error, OSError)) or type(exc).__name__ == "PanicException"


PUBLISHED_KEY = "published_ids"
PAGE = 5_000  # records per Chroma read or delete: whole-collection calls fail past ~30k (SQLite's variable limit)
GENERATION_KEY = "published_generation"  # new on every publish: metadata may change while the ids stay


@dataclass
class ChunkStore:
    collection: Any  # chromadb Collection
    client: Any
    embedded: bool = False  # files on this machine: a failure there is damage, fixed by a rebuild

    @property
    def contract(self) -> dict[str, Any]:
        return dict(self.collection.metadata or {})

    @property
    def passage_precision(self) -> str:
        """How the stored vectors were computed (Settings.passage_precision); older indexes: float32."""
        return self.contract.get("passage_precision", "float32")

    @_guarded
    def count(self) -> int:
        return self.collection.count()

    @_guarded
    def ids_for_path(self, path: str) -> set[str]:
        """Ids of the chunks of one document, keyed by its absolute path."""
        return set(self.collection.get(where={"path": path}, include=[])["ids"])

    def _pages(self, include: list[str], where: dict | None = None,
               keep: Callable[[dict[str, list]], dict[str, list]] | None = None) -> dict[str, list]:
        """Every matching record, read PAGE at a time: one `get()` of a whole large collection fails
        in Chroma's SQLite ("too many SQL variables", seen at ~90k chunks). `keep` trims each page as it
        arrives, so a caller that needs a few fields never holds every record whole."""
        got: dict[str, list] = {"ids": [], **{field: [] for field in include}}
        while True:
            page = self.collection.get(where=where, include=include, limit=PAGE, offset=len(got["ids"]))
            count = len(page["ids"])
            page = keep(page) if keep else page
            for field in got:
                got[field].extend(page[field])
            if count < PAGE:
                return got

    @_guarded
    def all_ids(self) -> list[str]:
        return sorted(self._pages([])["ids"])

    @_guarded
    def ids_without(self, key: str, value: str) -> list[str]:
        """Ids of the chunks whose metadata lacks `key: value` (read as ids only, not whole records)."""
        having = set(self._pages([], where={key: value})["ids"])
        return [i for i in self.all_ids() if i not in having]

    @_guarded
    def all_fields(self, keys: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """(chunk id, the named metadata fields, None where absent) for every chunk in the collection."""
        got = self._pages(["metadatas"], keep=_only(keys))
        return list(zip(got["ids"], got["metadatas"]))

    @_guarded
    def upsert(self, ids: Sequence[str], embeddings: Sequence[Sequence[float]], texts: Sequence[str],
               metadatas: Sequence[dict]) -> None:
        self.collection.upsert(ids=list(ids), embeddings=[list(e) for e in embeddings],
                               documents=list(texts), metadatas=list(metadatas))

    @_guarded
    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict]) -> None:
        if ids:
            self.collection.update(ids=list(ids), metadatas=list(metadatas))

    @_guarded
    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for start in range(0, len(ids), PAGE):  # (a rebuild may delete every chunk at once)
            self.collection.delete(ids=ids[start : start + PAGE])

    @_guarded
    def get(self, ids: Sequence[str], keys: Sequence[str] | None = None) -> dict[str, tuple[str, dict]]:
        """id -> (text, metadata) of the chunks found (only the metadata fields named in `keys`, when given)."""
        found: dict[str, tuple[str, dict]] = {}
        ids = list(ids)
        trim = _only(keys) if keys is not None else None
        for start in range(0, len(ids), PAGE):
            got = self.collection.get(ids=ids[start : start + PAGE], include=["documents", "metadatas"])
            got = trim(got) if trim else got
            found.update({i: (d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])})
        return found

    @_guarded
    def all_chunks(self, keys: Sequence[str] | None = None) -> tuple[list[str], list[str], list[dict]]:
        """Every chunk's id, text and metadata (only the fields named in `keys`, when given), by id."""
        got = self._pages(["documents", "metadatas"], keep=_only(keys) if keys is not None else None)
        order = sorted(range(len(got["ids"])), key=lambda i: got["ids"][i])
        return ([got["ids"][i] for i in order], [got["documents"][i] for i in order],
                [got["metadatas"][i] for i in order])

    @_guarded
    def publish(self, digest: str) -> None:
        """Record, in the collection itself, which chunk set readers may use: the ids digest of the
        keyword index built over it. Readers in other processes compare it with theirs."""
        import uuid

        metadata = {k: v for k, v in self.contract.items() if not k.startswith("hnsw:")}  # fixed at creation
        self.collection.modify(metadata={**metadata, PUBLISHED_KEY: digest, GENERATION_KEY: uuid.uuid4().hex})

    def published(self) -> str | None:
        """The digest the last finished ingest published (re-read from the store, not cached)."""
        return self.publication()[0]

    @_guarded
    def publication(self) -> tuple[str | None, str | None]:
        """(ids digest, generation) of the last finished ingest, re-read from the store."""
        metadata = self.client.get_collection(self.collection.name).metadata or {}
        return metadata.get(PUBLISHED_KEY), metadata.get(GENERATION_KEY)

    def query(self, embedding: Sequence[float], n: int, where: dict | None = None) -> list[tuple[str, float]]:
        return self.query_many([embedding], n, where)[0]

    @_guarded
    def query_many(self, embeddings: Sequence[Sequence[float]], n: int,
                   where: dict | None = None) -> list[list[tuple[str, float]]]:
        """The n nearest chunks (id, cosine similarity) of each query vector, in one Chroma call: 8 at once
        cost ~0.3 ms each against ~1.2 ms alone (rag.batching)."""
        if n <= 0 or not embeddings:
            return [[] for _ in embeddings]
        # Chroma returns fewer than n when the collection is smaller: no count() round trip needed.
        got = self.collection.query(query_embeddings=[list(e) for e in embeddings], n_results=n, where=where,
                                    include=["distances"])
        # cosine distance -> similarity
        return [[(i, 1.0 - d) for i, d in zip(ids, distances)] for ids, distances in zip(got["ids"], got["distances"])]


def _only(keys: Sequence[str]) -> Callable[[dict[str, list]], dict[str, list]]:
    """A page of records with only the named metadata fields (None where absent): a chunk's metadata is
    ~5 KB, nearly all of it sentence vectors, which whole-collection readers rarely need."""
    def trimmed(page: dict[str, list]) -> dict[str, list]:
        return {**page, "metadatas": [{key: (m or {}).get(key) for key in keys} for m in page["metadatas"]]}

    return trimmed


def _client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
        except Exception as exc:  # chromadb raises bare ValueError/ConnectionError here
            raise StoreUnavailable(
                f"search unavailable: cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({exc})"
            ) from None
    # Embedded Chroma writes to its SQLite file even to read (journal, migrations): a read-only data dir is
    # a configuration problem to name, not a damaged store.
    settings.check_data_dir(write=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store_dir = settings.data_dir / "chroma"
    if store_dir.is_dir() and not all(os.access(p, os.W_OK) for p in (store_dir, *store_dir.glob("*.sqlite3"))):
        raise ConfigError(f"the Chroma store in {store_dir} is read-only for this user: embedded Chroma needs "
                          "write access even to read; fix its permissions, or read from a Chroma server (CHROMA_HOST)")
    try:
        return chromadb.PersistentClient(path=str(settings.data_dir / "chroma"), settings=chroma_settings)
    except Exception as exc:  # a file where the directory should be, a garbled SQLite file…
        raise StoreDamaged(f"the Chroma store cannot be opened: {type(exc).__name__}: {str(exc)[:200]}") from None


# Chroma writes its HNSW index to disk once this many records have been added since the last write; every
# process that opens the collection replays the records since then (chroma-core/chroma#7463: no API forces a
# write). Chroma's default, 1,000, made the first query of a cold `rag ask` at 10k chunks cost 0.24 s.
HNSW_SYNC_THRESHOLD = 100


# The chromadb release whose storage engine `_EngineClient` drives (tests/test_store_engine.py checks it
# against PersistentClient on the same files); with any other installed, readers use PersistentClient.
ENGINE_CHECKED_WITH = "1.5.9"
_TENANT, _DATABASE = "default_tenant", "default_database"  # chromadb's defaults, where PersistentClient keeps it


class _EngineCollection:
    """The reading half of a chromadb `Collection`, on Chroma's engine (see `_EngineClient`): the same calls
    with the same results, as plain dicts."""

    def __init__(self, bindings: Any, model: Any) -> None:
        self._bindings, self.id, self.name = bindings, str(model.id), model.name
        self.metadata, self.configuration_json = model.metadata, model.configuration

    def count(self) -> int:
        return self._bindings.count(self.id, _TENANT, _DATABASE)

    def get(self, ids: Sequence[str] | None = None, where: dict | None = None, limit: int | None = None,
            offset: int | None = None, include: Sequence[str] = ("documents", "metadatas")) -> dict[str, Any]:
        import json

        got = self._bindings.get(self.id, list(ids) if ids is not None else None, json.dumps(where) if where else None,
                                 limit, offset or 0, None, list(include), _TENANT, _DATABASE)
        return {"ids": got.ids, "documents": got.documents, "metadatas": got.metadatas}

    def query(self, query_embeddings: Sequence[Sequence[float]], n_results: int, where: dict | None = None,
              include: Sequence[str] = ("distances",)) -> dict[str, Any]:
        import json

        got = self._bindings.query(self.id, None, [list(map(float, e)) for e in query_embeddings], n_results,
                                   json.dumps(where) if where else None, None, list(include), _TENANT, _DATABASE)
        return {"ids": got.ids, "distances": got.distances}


class _EngineClient:
    """An embedded store opened for reading through Chroma's own storage engine (`chromadb_rust_bindings`, the
    Rust core every embedded `PersistentClient` runs on: same files, same code), without the chromadb Python
    package around it. Importing that package and opening a client cost ~1 s and ~60 MB of a cold `rag ask`
    (its pydantic models, telemetry, HTTP client and embedding functions, none of which a reader uses);
    the engine opens in ~0.06 s. Only reading: writers and servers use PersistentClient."""

    def __init__(self, path: str) -> None:
        import resource

        import chromadb_rust_bindings as engine

        # chromadb's migration hash; Validate rather than Apply: a store that needs a migration fails to open
        # here, and PersistentClient (the fallback) applies it.
        config = engine.SqliteDBConfig(hash_type=engine.MigrationHash.MD5, migration_mode=engine.MigrationMode.Validate,
                                       url=f"{path}/chroma.sqlite3")
        # As chromadb sizes it: an HNSW index holds 5 files open.
        self._bindings = engine.Bindings(allow_reset=False, sqlite_db_config=config, persist_path=path,
                                         hnsw_cache_size=resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 5)

    def get_collection(self, name: str, embedding_function: Any = None) -> _EngineCollection:
        return _EngineCollection(self._bindings, self._bindings.get_collection(name, _TENANT, _DATABASE))


def _engine_client(settings: Settings) -> _EngineClient | None:
    """The engine reader of an embedded store, when the installed chromadb is the release it was checked
    with and the store opens that way; None: use PersistentClient."""
    import importlib.util

    path = settings.data_dir / "chroma"
    spec = importlib.util.find_spec("chromadb_rust_bindings")
    if settings.chroma_host or spec is None or spec.origin is None or not (path / "chroma.sqlite3").is_file():
        return None
    site = os.path.dirname(os.path.dirname(spec.origin))
    if not os.path.isdir(os.path.join(site, f"chromadb-{ENGINE_CHECKED_WITH}.dist-info")):
        return None
    try:
        return _EngineClient(str(path))
    except Exception:  # a store needing a migration, a damaged file: PersistentClient decides what it is
        return None


def open_store(settings: Settings, model: str, dimension: int | None, *, create: bool = True,
               reader: bool = False) -> ChunkStore:
    """The chunk collection, refusing one built with another embedding model, and an ingest (`create`)
    asking for another precision than its vectors were stored at. `reader` (with create=False): the process
    only reads, so an embedded store may be opened through Chroma's engine (`_EngineClient`)."""
    client = (_engine_client(settings) if reader and not create else None) or _client(settings)
    contract = {"embed_model": model, "embed_dim": dimension or 0, "chunker": settings.chunker_id,
                "passage_precision": settings.passage_precision or "float32",
                "hnsw:space": "cosine", "hnsw:sync_threshold": HNSW_SYNC_THRESHOLD}
    try:
        if create:
            collection = client.get_or_create_collection(settings.collection, metadata=contract,
                                                         embedding_function=None)
        else:
            collection = client.get_collection(settings.collection, embedding_function=None)
    except StoreUnavailable:
        raise
    except Exception as exc:
        if not create and "does not exist" in str(exc).lower():
            raise StoreUnavailable("the index is empty: run `rag ingest` first") from None
        if not settings.chroma_host and _damage(exc):
            raise StoreDamaged(f"the Chroma collection cannot be opened: {type(exc).__name__}: {str(exc)[:200]}") from None
        raise StoreUnavailable(f"search unavailable: cannot open the Chroma collection ({exc})") from None
    recorded = (collection.metadata or {}).get("embed_model")
    if recorded and recorded != model:
        raise StoreMismatch(
            f"the index was built with embedding model {recorded!r} but the current setting is {model!r}; "
            f"rebuild it with `rag ingest --rebuild` (or set RAG_EMBED_MODEL={recorded})"
        )
    store = ChunkStore(collection=collection, client=client, embedded=not settings.chroma_host)
    if create and settings.passage_precision not in (None, store.passage_precision):
        # Questions match either (int8 vectors are within cosine ~0.02 of float32), so readers are not
        # refused; mixing both in one index is.
        raise StoreMismatch(
            f"the index stores {store.passage_precision} passage vectors but passage_precision is "
            f"{settings.passage_precision}; rebuild it with `rag ingest --rebuild` "
            f"(or set RAG_PASSAGE_PRECISION={store.passage_precision})")
    if create and (collection.configuration_json or {}).get("hnsw", {}).get("sync_threshold") not in (
            None, HNSW_SYNC_THRESHOLD):  # a collection made before the threshold was set: from this ingest on
        collection.modify(configuration={"hnsw": {"sync_threshold": HNSW_SYNC_THRESHOLD}})
    return store


def reset_store(settings: Settings) -> None:
    """Drop the collection before a rebuild. In embedded mode a store too damaged for that (a corrupt
    SQLite file, an index Chroma cannot open) is removed from disk: it is derived data, and the source
    files plus the manifest rebuild it."""
    if settings.chroma_host:
        _drop(_client(settings), settings.collection)
        return
    try:
        _drop(_client(settings), settings.collection)
        damaged = bool(sqlite_problems(settings))
    except Exception:
        damaged = True
    if damaged:
        import shutil

        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # this process must not keep using the removed files
        target = settings.data_dir / "chroma"
        if target.is_file() or target.is_symlink():
            target.unlink()
        shutil.rmtree(target, ignore_errors=True)


def sqlite_problems(settings: Settings) -> list[str]:
    """What SQLite's own integrity check finds wrong with the embedded store's file (empty: nothing)."""
    import sqlite3

    path = settings.data_dir / "chroma" / "chroma.sqlite3"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            result = db.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        return [f"the SQLite file is damaged ({exc})"]
    return [] if result == "ok" else [f"the SQLite file is damaged ({result})"]


def _drop(client: Any, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception:  # absent already: nothing to drop
        pass
