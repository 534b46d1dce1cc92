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


class Manifest:
    def __init__(self, data_dir: Path):
        self.path = data_dir / "manifest.json"
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.documents: dict[str, dict[str, Any]] = data.get("documents", {})
        self.indexed_at: float | None = data.get("indexed_at")

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        payload = {"version": MANIFEST_VERSION, "indexed_at": time.time(), "documents": self.documents}
        tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False))
        os.replace(tmp, self.path)

    def forget(self) -> None:
        self.documents = {}
        self.path.unlink(missing_ok=True)
