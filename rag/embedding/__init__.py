"""Embedding models, shared by ingestion and retrieval.

    models.py      the factory (`get_embedder`): the bundled MiniLM offline, OpenAI by configuration, and
                   the query-vector cache and batcher in front of it
    onnx_model.py  the bundled MiniLM exported to and run by ONNX Runtime
"""
