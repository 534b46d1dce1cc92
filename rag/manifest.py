"""The manifest: what the index knows about each document, kept under the data dir.

documents[absolute path] -> {source, title, content_hash, publisher, author, date, chunks,
signature, duplicates, dropped_lines}. Ingest writes it (atomically, after the collection);
everything else only reads it, so `rag sources` needs neither Chroma nor the model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1
_READ: dict[str, tuple[tuple, "Manifest"]] = {}  # resolved path -> (its stat when read, the manifest)


class Manifest:
    def __init__(self, data_dir: Path, *, empty: bool = False):
        """The manifest on disk (StoreDamaged when it cannot be read); with `empty`, a new one that
        replaces it on save, its old file never read (a rebuild needs nothing of the old index)."""
        self.path = data_dir / "manifest.json"
        data = {} if empty else _read(self.path)
        self.documents: dict[str, dict[str, Any]] = data.get("documents", {})
        self.indexed_at: float | None = data.get("indexed_at")

    @classmethod
    def read(cls, data_dir: Path) -> "Manifest":
        """The manifest for readers, parsed once per version of the file (a 10k-chunk manifest takes
        ~0.2 s to parse, and a cold `rag ask` read it twice). Shared between callers: never mutate it;
        ingest makes its own with `Manifest(data_dir)`."""
        path = data_dir / "manifest.json"
        try:
            stat = path.stat()
            key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            return cls(data_dir)  # absent (empty) or unreadable (StoreDamaged): as the constructor says
        if _READ.get(key[0], (None,))[0] != key:
            _READ[key[0]] = (key, cls(data_dir))
        return _READ[key[0]][1]

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        payload = {"version": MANIFEST_VERSION, "indexed_at": time.time(), "documents": self.documents}
        tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False))
        os.replace(tmp, self.path)

    def forget(self) -> None:
        self.documents = {}
        self.path.unlink(missing_ok=True)


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
