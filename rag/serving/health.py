"""`rag check`: is the store whole? Checked in a separate process, because Chroma can take the whole
process down on a corrupt index; the parent reports "store damaged — run `rag ingest --rebuild`".

The source files and the manifest are the truth; the store is derived from them and can always be
rebuilt. The probe checks what a damaged store gets wrong: the SQLite file's integrity (embedded
mode), every published chunk being present, and stored vectors finding themselves in the vector index.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from rag.config import Settings
from rag.errors import REBUILD_HINT as REBUILD
SELF_CHECKS = 20  # stored vectors queried back; each must find its own chunk first


@dataclass
class StoreHealth:
    ok: bool
    chunks: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.ok:
            return f"store ok: {self.chunks} chunks, every published chunk present and findable"
        return f"{REBUILD} ({'; '.join(self.problems)})"


def check_store(settings: Settings, timeout: float = 300) -> StoreHealth:
    """Probe the store from a child process; a crash or a hang of the child is itself the finding."""
    settings.check_data_dir(write=False)
    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "RAG_COLLECTION": settings.collection,
           "RAG_EMBED_MODEL": settings.embed_model}
    if settings.chroma_host:
        env.update(CHROMA_HOST=settings.chroma_host, CHROMA_PORT=str(settings.chroma_port))
    try:
        done = subprocess.run([sys.executable, "-m", "rag.serving.health"], env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return StoreHealth(ok=False, problems=[f"opening the store hung for over {timeout:g} s"])
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return StoreHealth(ok=False, problems=[f"opening the store crashed the checking process ({name})"])
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return StoreHealth(ok=False, problems=[f"the checking process failed: {tail[:300]}"])
    return StoreHealth(ok=not found["problems"], chunks=found["chunks"], problems=found["problems"])


def probe(settings: Settings) -> dict[str, Any]:
    """Run in the child: every problem found, as text."""
    from rag.retrieval.keyword import KeywordIndex
    from vectorstore.chroma import sqlite_problems

    problems: list[str] = []
    if not settings.chroma_host:
        problems += sqlite_problems(settings)
        if problems:
            return {"chunks": 0, "problems": problems}
    try:
        store = _open(settings)
        ids = set(store.all_ids())
    except Exception as exc:  # whatever a damaged store raises is the finding
        return {"chunks": 0, "problems": [f"the store cannot be read ({type(exc).__name__}: {exc})"]}
    from rag.errors import StoreDamaged
    from rag.ingestion.manifest import Manifest

    try:
        Manifest(settings.data_dir)
        keyword = KeywordIndex.load(settings.data_dir / "keyword")
    except StoreDamaged as exc:
        return {"chunks": len(ids), "problems": [str(exc).removeprefix(REBUILD).strip(" ()")]}
    published = keyword.ids if keyword else []
    missing = [i for i in published if i not in ids]
    if missing:
        problems.append(f"{len(missing)} published chunks are missing from the store")
    problems += _self_retrieval_problems(store, [i for i in published if i in ids][:SELF_CHECKS])
    return {"chunks": len(ids), "problems": problems}


def _open(settings: Settings):
    from rag.embedding.models import embedding_dimension
    from vectorstore import open_store

    return open_store(settings, settings.embed_model, embedding_dimension(settings.embed_model), create=False)


def _self_retrieval_problems(store: Any, ids: list[str]) -> list[str]:
    if not ids:
        return []
    got = store.collection.get(ids=ids, include=["embeddings"])
    lost = 0
    for chunk_id, vector in zip(got["ids"], got["embeddings"]):
        hits = store.query(list(vector), 1)
        lost += not hits or hits[0][0] != chunk_id and hits[0][1] < 0.999
    return [f"{lost} of {len(ids)} stored vectors do not find themselves in the vector index"] if lost else []


if __name__ == "__main__":
    print(json.dumps(probe(Settings.from_env())))
