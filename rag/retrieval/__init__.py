"""Retrieval: a question -> the passages that answer it.

    search.py     `HybridSearch`: dense (Chroma) + BM25 over chunks and whole documents, fused
    keyword.py    the persisted BM25 indexes (bm25s) and the tokens they are built from
    filters.py    metadata filters, one meaning in Python, the CLI, REST and MCP
    retriever.py  `HybridRetriever`: the search as a LlamaIndex `BaseRetriever`
"""
