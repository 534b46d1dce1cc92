"""Settings: environment and flags map onto one object; nonsense is a clear ValueError."""

from pathlib import Path

import pytest

from rag import ConfigError, Settings


def test_defaults_then_env_then_overrides():
    env = {"RAG_DATA_DIR": "/tmp/x", "RAG_K": "4", "OPENAI_API_KEY": "sk-abc", "CHROMA_HOST": "db"}
    s = Settings.from_env(env, k=6)
    assert s.data_dir == Path("/tmp/x") and s.k == 6 and s.chroma_host == "db"
    assert s.resolved_mode() == "llm"
    assert Settings.from_env({}).resolved_mode() == "extractive"
    assert "sk-abc" not in repr(s)


@pytest.mark.parametrize("changes, message", [
    ({"chunk_size": 8}, "chunk_size must be at least 32"),
    ({"chunk_overlap": 500}, "chunk_overlap must be between 0 and chunk_size"),
    ({"k": 0}, "k must be between 1 and 50"),
    ({"mode": "magic"}, "mode must be one of auto, extractive, llm"),
    ({"dup_threshold": 1.5}, "dup_threshold must be in"),
    ({"embed_model": "bert"}, "embed_model must be"),
    ({"llm_timeout": 0}, "llm_timeout must be positive"),
])
def test_nonsense_is_refused(changes, message):
    with pytest.raises(ConfigError, match=message) as excinfo:
        Settings(**changes)
    assert isinstance(excinfo.value, ValueError)


def test_public_api_is_explicit():
    import rag

    assert {"ask", "retrieve", "ingest", "get_retriever", "Settings", "Answer", "Citation", "Passage",
            "HybridRetriever", "RagError"} <= set(rag.__all__)
    for name in rag.__all__:
        assert getattr(rag, name) is not None
