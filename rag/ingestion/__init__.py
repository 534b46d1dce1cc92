"""Ingestion: files -> clean documents -> chunks with offsets and sentence vectors -> Chroma + BM25.

    documents.py       reading, decoding, cleaning, metadata, near-duplicate signatures
    incremental.py     the incremental ingest (`rag ingest`, `rag remove`): plan, embed, store, publish
    manifest.py        what the index knows about each document
    sentence_store.py  sentence vectors stored with each chunk (read again when answering)
    injection.py       text in an article that addresses a language model, found at ingest
    injection_fit.py   fits the injection classifier (`python -m rag.ingestion.injection_fit`)
    uploads.py         articles added through the chat or the API

The library's `rag.ingest(...)` is a function (`rag.api`); this package is named for the stage so that
importing it never replaces that function on the `rag` module.
"""
