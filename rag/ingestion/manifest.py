"""The manifest: what the index knows about each document, kept under the data dir.

documents[absolute path] -> {source, title, content_hash, publisher, author, date, chunks,
signature, duplicates, dropped_lines, stat, short_lines, repeated_lines, cleaned_with}. Ingest writes it (atomically, after the collection);
everything else only reads it, so `rag sources` needs neither Chroma nor the model.

Beside it, `search.json` holds the little a question needs (the document count, stated dates, and
near-duplicate groups), so that a fresh process answering one question does not parse the whole
manifest: at 100k chunks that is ~70 MB of JSON, mostly MinHash signatures only ingest reads. It is
stamped with the manifest's stat (size, mtime, inode, as git's index stamps files) and written before the
manifest is moved into place, so a stamp that does not match the manifest on disk (a crash between the
two, a copied data dir) sends the reader back to the manifest itself: never a view of another version.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

MANIFEST_VERSION = 1
_READ: dict[str, tuple[tuple, "Manifest"]] = {}  # resolved path -> (its stat when read, the manifest)
_VIEWS: dict[str, tuple[tuple, "SearchView"]] = {}  # resolved data dir -> (both files' stamps, the view)
SEARCH_VIEW = "search.json"


@dataclass(frozen=True)
class SearchView:
    """What answering a question needs of the manifest."""

    documents: int = 0
    dates: dict[str, str] = field(default_factory=dict)  # source -> the date it states (dated ones only)
    duplicates: Mapping[str, list[str]] = field(default_factory=dict)  # source -> its near-duplicates

    @classmethod
    def of(cls, entries: Iterable[dict[str, Any]]) -> "SearchView":
        entries = list(entries)
        return cls(len(entries), {d["source"]: d["date"] for d in entries if d.get("date")},
                   {d["source"]: d["duplicates"] for d in entries if d.get("duplicates")})

    def encode(self) -> dict[str, Any]:
        """As JSON, each near-duplicate by its number in `names`, a document's peers in one string: wire
        copies and versions of a story make groups of many, and spelling every member out for every
        other made the file as slow to read as the manifest (at 100k SciFact chunks, 627k of them)."""
        names = sorted({s for peers in self.duplicates.values() for s in peers})
        number = {name: i for i, name in enumerate(names)}
        return {"documents": self.documents, "dates": self.dates, "names": names,
                "duplicates": {source: " ".join(str(number[s]) for s in peers)
                               for source, peers in self.duplicates.items()}}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> "SearchView":
        return cls(int(data["documents"]), dict(data["dates"]), _Peers(list(data["names"]), dict(data["duplicates"])))


class _Peers(Mapping):
    """source -> its near-duplicates, each document's list spelled out only when a search asks for it."""

    def __init__(self, names: list[str], numbered: dict[str, str]):
        self._names, self._numbered = names, numbered

    def __getitem__(self, source: str) -> list[str]:
        return [self._names[int(i)] for i in self._numbered[source].split()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._numbered)

    def __len__(self) -> int:
        return len(self._numbered)


class Manifest:
    def __init__(self, data_dir: Path, *, empty: bool = False):
        """The manifest on disk (StoreDamaged when it cannot be read); with `empty`, a new one that
        replaces it on save, its old file never read (a rebuild needs nothing of the old index)."""
        self.path = data_dir / "manifest.json"
        data = {} if empty else _read(self.path)
        self.documents: dict[str, dict[str, Any]] = data.get("documents", {})
        self.indexed_at: float | None = data.get("indexed_at")
        # What the documents' near-duplicate lists were computed from (`rag.ingestion.incremental`): unchanged, they stand.
        self.duplicates_key: str | None = data.get("duplicates_key")

    @classmethod
    def read(cls, data_dir: Path) -> "Manifest":
        """The manifest for readers, parsed once per version of the file (a 10k-chunk manifest takes
        ~0.2 s to parse, and a cold `rag ask` read it twice). Shared between callers: never mutate it;
        ingest makes its own with `Manifest(data_dir)`."""
        path = data_dir / "manifest.json"
        try:
            key = (str(path.resolve()), *_stamp(path))
        except OSError:
            return cls(data_dir)  # absent (empty) or unreadable (StoreDamaged): as the constructor says
        if _READ.get(key[0], (None,))[0] != key:
            _READ[key[0]] = (key, cls(data_dir))
        return _READ[key[0]][1]

    @classmethod
    def search_view(cls, data_dir: Path) -> SearchView:
        """The search view of the manifest on disk: from `search.json` when its stamp matches the
        manifest, else (a missing, stale or unreadable view) from the manifest itself. Read once per
        version of the two files."""
        view_file = data_dir / SEARCH_VIEW
        try:
            stamps = (_stamp(data_dir / "manifest.json"), _stamp(view_file))
        except OSError:  # no view (an older index, or none at all), or unreadable: the manifest decides
            return SearchView.of(cls.read(data_dir).documents.values())
        key = str(data_dir.resolve())
        if key in _VIEWS and _VIEWS[key][0] == stamps:
            return _VIEWS[key][1]
        try:
            view = json.loads(view_file.read_text(encoding="utf-8"))
            if view["manifest"] == stamps[0]:
                _VIEWS[key] = (stamps, SearchView.decode(view))
                return _VIEWS[key][1]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return SearchView.of(cls.read(data_dir).documents.values())

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        payload = {"version": MANIFEST_VERSION, "indexed_at": time.time(), "duplicates_key": self.duplicates_key,
                   "documents": self.documents}
        tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False))
        # The view first, stamped with the manifest it describes: a rename keeps size, mtime and inode.
        view = SearchView.of(self.documents.values())
        view_tmp = self.path.with_name(SEARCH_VIEW + ".tmp")
        view_tmp.write_text(json.dumps({"manifest": _stamp(tmp), **view.encode()}, ensure_ascii=False),
                            encoding="utf-8")
        os.replace(view_tmp, self.path.with_name(SEARCH_VIEW))
        os.replace(tmp, self.path)

    def forget(self) -> None:
        self.documents = {}
        self.path.unlink(missing_ok=True)
        self.path.with_name(SEARCH_VIEW).unlink(missing_ok=True)


def _stamp(path: Path) -> list[int]:
    """Which version of a file this is, without reading it: a new file (ingest replaces, never rewrites)
    has a new inode, and an edit in place a new mtime or size."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _read(path: Path) -> dict[str, Any]:
    from rag.errors import StoreDamaged

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StoreDamaged(f"{path.name} cannot be read: {type(exc).__name__}") from None
    if not (isinstance(data, dict) and isinstance(data.get("documents", {}), dict)
            and all(isinstance(d, dict) and "source" in d and "content_hash" in d
                    for d in data.get("documents", {}).values())):
        raise StoreDamaged(f"{path.name} does not hold a manifest")
    return data
