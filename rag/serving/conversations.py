"""Saved conversations: every chat and its messages in SQLite under the data dir.

A chat is a title and an ordered list of messages: a user message is `{"role": "user", "content": …}`,
an assistant message is what the chat shows (`Answer.to_dict()` plus what its sources display). They
survive a page reload and a restart, and export to Markdown with their citations and quotes.

SQLite (the standard library's) rather than files: renames, deletes and appends from several browser
sessions at once stay whole, and a half-written message is never read back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from rag.errors import ConversationsUnavailable, InputRejected

FILE_NAME = "conversations.sqlite3"
TITLE_CHARS = 80
NEW_TITLE = "New chat"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_of ON messages(conversation, id);
"""


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created: float
    updated: float
    messages: int  # how many


class Conversations:
    """The saved chats of one data dir. Safe to share between threads (one connection per call)."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / FILE_NAME
        self._ready = False
        self._lock = threading.Lock()

    # ---- chats
    def create(self, title: str = NEW_TITLE) -> Conversation:
        now = time.time()
        with self._db() as db:
            cursor = db.execute("INSERT INTO conversations (title, created, updated) VALUES (?, ?, ?)",
                                (_title(title), now, now))
            return Conversation(int(cursor.lastrowid), _title(title), now, now, 0)

    def list(self) -> list[Conversation]:
        """Every chat, the most recently used first."""
        with self._db() as db:
            rows = db.execute("SELECT c.id, c.title, c.created, c.updated, COUNT(m.id) FROM conversations c "
                              "LEFT JOIN messages m ON m.conversation = c.id GROUP BY c.id "
                              "ORDER BY c.updated DESC, c.id DESC").fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, conversation: int) -> Conversation:
        with self._db() as db:
            row = db.execute("SELECT c.id, c.title, c.created, c.updated, COUNT(m.id) FROM conversations c "
                             "LEFT JOIN messages m ON m.conversation = c.id WHERE c.id = ? GROUP BY c.id",
                             (conversation,)).fetchone()
        if row is None:
            raise InputRejected(f"there is no saved conversation {conversation} (deleted, or another data dir)")
        return Conversation(*row)

    def rename(self, conversation: int, title: str) -> None:
        with self._db() as db:
            self._require(db, conversation)
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (_title(title), conversation))

    def delete(self, conversation: int) -> None:
        with self._db() as db:
            self._require(db, conversation)
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation,))

    # ---- messages
    def messages(self, conversation: int) -> list[dict[str, Any]]:
        with self._db() as db:
            self._require(db, conversation)
            rows = db.execute("SELECT body FROM messages WHERE conversation = ? ORDER BY id",
                              (conversation,)).fetchall()
        return [json.loads(body) for (body,) in rows]

    def append(self, conversation: int, message: dict[str, Any]) -> None:
        """Add a message at the end. The first question of a chat still called "New chat" names it."""
        if message.get("role") not in ("user", "assistant"):
            raise InputRejected("a message needs a role of 'user' or 'assistant'")
        body = json.dumps(message, ensure_ascii=False)
        with self._db() as db:
            title = self._require(db, conversation)
            db.execute("INSERT INTO messages (conversation, body) VALUES (?, ?)", (conversation, body))
            named = _title(message.get("content", "")) if title == NEW_TITLE and message["role"] == "user" else title
            db.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?",
                       (time.time(), named, conversation))

    # ---- the database
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction: committed when the block ends, rolled back on an error."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise ConversationsUnavailable(self.path, exc) from None
        try:
            db.execute("PRAGMA foreign_keys = ON")
            if not self._ready:
                with self._lock:
                    db.executescript(_SCHEMA)
                    self._ready = True
            with db:
                yield db
        except sqlite3.Error as exc:
            raise ConversationsUnavailable(self.path, exc) from None
        finally:
            db.close()

    @staticmethod
    def _require(db: sqlite3.Connection, conversation: int) -> str:
        row = db.execute("SELECT title FROM conversations WHERE id = ?", (conversation,)).fetchone()
        if row is None:
            raise InputRejected(f"there is no saved conversation {conversation} (deleted, or another data dir)")
        return row[0]


def _title(text: str) -> str:
    """One line, at most TITLE_CHARS characters; a blank title is refused."""
    line = " ".join(str(text).split())
    if not line:
        raise InputRejected("a conversation title cannot be empty")
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def to_markdown(title: str, messages: list[dict[str, Any]]) -> str:
    """A chat as Markdown: each question, its answer with its [n] markers, and under it the numbered
    sources with their quotes. Article and model text is escaped: the file renders as plain text
    wherever it is opened (no live links or images from an article)."""
    from rag.serving.render import escape_markdown

    lines = [f"# {escape_markdown(title)}", ""]
    for message in messages:
        if message.get("role") == "user":
            lines += [f"## {escape_markdown(message.get('content', ''))}", ""]
            continue
        if message.get("error"):
            lines += [f"*Not answered: {escape_markdown(message['error'])}*", ""]
            continue
        if message.get("query") and message.get("query") != message.get("question"):
            lines += [f"*Searched for: {escape_markdown(message['query'])}*", ""]
        lines += [escape_markdown(message.get("answer", "")), ""]
        sources = []
        documents = message.get("documents") or {}
        for citation in message.get("citations") or []:
            about = documents.get(citation.get("source"), {})
            where = ", ".join(escape_markdown(str(x)) for x in (citation.get("source"), about.get("publisher"),
                                                                 about.get("date")) if x)
            name = escape_markdown(citation.get("title") or citation.get("source") or "")
            sources.append(f"{citation.get('id')}. {name} ({where}): “{escape_markdown(citation.get('quote', ''))}”")
        if sources:
            lines += ["Sources:", "", *sources, ""]
    return "\n".join(lines).rstrip() + "\n"
