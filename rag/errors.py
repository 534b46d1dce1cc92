"""Every failure a user can see, one class each, one clear message each.

    RagError
    ├── ConfigError          a setting is nonsense (also a ValueError)
    ├── InputRejected        a file or a question we will not take, and why
    │   └── GoldFileError    a gold Q&A file with bad rows (each listed as path:line: problem)
    ├── StoreUnavailable     the Chroma store cannot be reached or opened
    │   └── StoreDamaged     a file of the data dir is damaged: "store damaged — run `rag ingest --rebuild`"
    ├── StoreMismatch        the index was built with another embedding model (or, for an ingest, precision)
    ├── StoreBusy            another ingest holds the write lock
    ├── EmbeddingFailed      the embedding model or endpoint failed mid-ingest (what was stored stays)
    ├── ConversationsUnavailable  the saved chats' SQLite file cannot be opened or read
    └── LLMUnavailable       the LLM endpoint failed (timeout, 5xx, bad reply)
        └── LLMAuthError     the endpoint refused our credentials (never retried)
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: the message is meant for the user as it is."""


class ConfigError(RagError, ValueError):
    pass


class InputRejected(RagError):
    pass


class GoldFileError(InputRejected):
    MAX_SHOWN = 20

    def __init__(self, path: object, problems: list[tuple[int, str]]):
        self.problems = problems  # (line number, what is wrong), every one found
        shown = [f"{path}:{line}: {what}" for line, what in problems[:self.MAX_SHOWN]]
        more = f"\n… and {len(problems) - self.MAX_SHOWN} more" if len(problems) > self.MAX_SHOWN else ""
        super().__init__(f"{len(problems)} problem(s) in gold file {path}:\n" + "\n".join(shown) + more)


class StoreUnavailable(RagError):
    pass


REBUILD_HINT = "store damaged — run `rag ingest --rebuild`"


class StoreDamaged(StoreUnavailable):
    """The one message for every damaged file of the data dir, with what was found in brackets."""

    def __init__(self, what: str):
        super().__init__(f"{REBUILD_HINT} ({what})")


class StoreMismatch(RagError):
    pass


class StoreBusy(RagError):
    pass


class LLMUnavailable(RagError):
    pass


class LLMAuthError(LLMUnavailable):
    pass


class EmbeddingFailed(RagError):
    pass


class ConversationsUnavailable(RagError):
    """The saved conversations cannot be read or written; the index is not affected."""

    def __init__(self, path: object, cause: Exception):
        super().__init__(f"saved conversations are unavailable ({type(cause).__name__}: {cause}); the articles "
                         f"and answers still work. Move {path} aside to start a new conversation list.")
