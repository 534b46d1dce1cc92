"""Serving: the shells over the library besides the CLI (`rag/cli.py`) and the Streamlit app (`app.py`).

    server.py         `rag serve`, the REST API (FastAPI)
    mcp_server.py     `rag mcp`, an MCP server on stdio
    render.py         answers and articles as Markdown that shows them as text
    conversations.py  saved chats (SQLite under the data dir)
    health.py         `rag check`, the store's integrity, checked in a child process
    loopback.py       servers we start on 127.0.0.1 (benchmarks, the local LLM)
"""
