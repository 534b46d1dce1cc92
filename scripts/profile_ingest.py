"""Where an ingest's time goes beside the model (docs/PERFORMANCE.md, "Where the time goes", Ingest).

    python scripts/profile_ingest.py FOLDER        # e.g. a folder of 1,200 SciFact abstracts

Indexes FOLDER into a fresh temporary data dir (the model loaded and the libraries imported first, as
the raw timing below excludes them too), timing every model call and counting its padded word
pieces; then runs the raw model on the same distinct texts right away (`rag.evaluation.bench_scale._raw`), so
both timings come from the same machine state. Prints the ingest's wall time, the time inside model
calls, the padding, the raw model's time and the ratio the issue-13 target is about.

Then the CPU an ingest spends beside the model: FOLDER indexed again into another temporary data dir
with the model swapped for a stand-in that returns fixed unit vectors (a measuring device, not a
model: chunking, the injection scan, MinHash, Chroma's writes and BM25 all run as usual). With the
raw model's CPU time, that bounds the ratio on this machine's cores even if the two overlapped
perfectly: model CPU / (model CPU + CPU beside it).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.config import Settings


def main(folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="profile-ingest-") as data:
        os.environ["RAG_DATA_DIR"] = data
        from rag.embedding import onnx_model as onnx_embedding
        from rag.evaluation.bench_scale import _raw
        from rag.config import Settings
        from rag.ingestion.documents import clean_document
        from rag.embedding.models import get_embedder
        from rag.ingestion.incremental import chunk_document, ingest

        settings = Settings.from_env()
        get_embedder(settings).get_query_embedding("warm up")
        chunk_document(clean_document("warm", "Warm up the splitter. A second sentence."), settings)
        import chromadb  # noqa: F401  (imported before the clock starts, as the model is loaded)

        calls = {"seconds": 0.0, "calls": 0, "pieces": 0, "padded": 0}
        run = onnx_embedding.OnnxSentenceEmbedding._run

        def timed_run(self: onnx_embedding.OnnxSentenceEmbedding, encodings: list, session: object) -> object:
            started = time.perf_counter()
            result = run(self, encodings, session)
            calls["seconds"] += time.perf_counter() - started
            calls["calls"] += 1
            calls["pieces"] += sum(len(e.ids) for e in encodings)
            calls["padded"] += max(len(e.ids) for e in encodings) * len(encodings)
            return result

        onnx_embedding.OnnxSentenceEmbedding._run = timed_run
        started = time.perf_counter()
        report = ingest([folder], settings)
        wall = time.perf_counter() - started
        onnx_embedding.OnnxSentenceEmbedding._run = run
        cpu_before = time.process_time()
        raw = _raw(Path(data))
        model_cpu = time.process_time() - cpu_before
    beside = _cpu_beside_the_model(folder, settings)
    print(f"ingest: {report.documents:,} documents, {report.chunks:,} chunks in {wall:.1f} s")
    print(f"  inside model calls: {calls['seconds']:.1f} s over {calls['calls']:,} calls, "
          f"padding {calls['padded'] / max(calls['pieces'], 1) - 1:.1%} of the word pieces")
    print(f"raw model on the same distinct texts: {raw['seconds']:.1f} s")
    print(f"pipeline speed / raw model: {raw['seconds'] / wall:.2f}x")
    print(f"CPU: the raw model {model_cpu:.2f} s, the ingest beside the model {beside:.2f} s; "
          f"ceiling on {os.cpu_count()} cores {model_cpu / (model_cpu + beside):.2f}x")


def _cpu_beside_the_model(folder: Path, settings: Settings) -> float:
    """Process CPU seconds of an ingest of `folder` (into a temporary data dir) whose model calls return
    fixed unit vectors."""
    import numpy as np

    from rag.embedding import models
    from rag.ingestion.incremental import ingest

    real = models.get_embedder(settings)
    dimension = len(real.get_query_embedding("the dimension"))

    class StandIn:  # the real model's interface and dimension; each text's vector a fixed unit vector
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def embed_batch(self, texts: list[str]) -> list[list[float]]:
            vectors = np.zeros((len(texts), dimension), dtype=np.float32)
            vectors[:, 0] = 1.0
            return vectors.tolist()

    stand_in, get_embedder = StandIn(), models.get_embedder
    models.get_embedder = lambda _settings: stand_in
    try:
        with tempfile.TemporaryDirectory(prefix="profile-ingest-") as data:
            started = time.process_time()
            ingest([folder], settings.replace(data_dir=Path(data)))
            return time.process_time() - started
    finally:
        models.get_embedder = get_embedder


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
