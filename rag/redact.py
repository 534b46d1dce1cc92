"""Keeping secrets (API key, API tokens) out of everything we print or log.

`install(settings)` sets up logging at the configured level with a filter on every handler that
replaces each configured secret with `[redacted]`, whatever logger the record came from (ours, the
openai SDK's, httpx's), so even debug logging cannot show a key. `redact()` does the same for any text
that leaves the process by another way (unexpected tracebacks, error messages that quote a server).
"""

from __future__ import annotations

import logging
from typing import Iterable

from rag.config import Settings

MASK = "[redacted]"


def secrets_of(settings: Settings) -> list[str]:
    values = (settings.openai_api_key, settings.api_token, settings.api_read_token)
    return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install(settings: Settings) -> None:
    """Logging at `settings.log_level` on stderr, every handler redacting the configured secrets."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
        root.handlers[0].setLevel(settings.log_level)  # also for libraries that set their own loggers to DEBUG
    else:
        root.setLevel(settings.log_level)
    secrets = secrets_of(settings)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(secrets))
        else:
            next(f for f in handler.filters if isinstance(f, RedactingFilter)).secrets = secrets
