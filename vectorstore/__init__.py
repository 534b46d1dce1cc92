"""Chroma access: embedded on disk by default, a Chroma server when CHROMA_HOST is set."""

from vectorstore.chroma import ChunkStore, open_store, reset_store

__all__ = ["ChunkStore", "open_store", "reset_store"]
