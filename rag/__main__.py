"""`python -m rag …`: the `rag` program (`rag.cli`), for a shell where the venv's script is not on PATH."""

from rag.cli import entry

entry()
