"""Metadata filters, one meaning everywhere (Python, CLI, REST, MCP): by source and by date range.

    Filters.parse({"source": ["seeds/003_….txt"], "date_from": "2025-10-01", "date_to": "2025-10-31"})

A source matches by its path as indexed or by a trailing part of it (a file name). A date range keeps
only documents whose date is known (stated in the article) and inside the range, both ends included.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any, Mapping

from rag.errors import InputRejected
from rag.text import require_text

FILTER_KEYS = ("source", "date_from", "date_to")


@dataclass(frozen=True)
class Filters:
    sources: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    @classmethod
    def parse(cls, value: "Filters | Mapping[str, Any] | None") -> "Filters | None":
        """Filters from a dict as sent by any surface; InputRejected naming what is wrong."""
        if value is None or isinstance(value, Filters):
            return value
        if not isinstance(value, Mapping):
            raise InputRejected("filters must be an object like {\"source\": [...], \"date_from\": \"YYYY-MM-DD\"}")
        unknown = sorted(set(value) - set(FILTER_KEYS))
        if unknown:
            raise InputRejected(f"unknown filter {unknown[0]!r}; filters are {', '.join(FILTER_KEYS)}")
        sources = value.get("source") or ()
        if isinstance(sources, str):
            sources = (sources,)
        if not isinstance(sources, (list, tuple)) or not all(isinstance(s, str) and s.strip() for s in sources):
            raise InputRejected("filter 'source' must be a file name or a list of them")
        for source in sources:
            require_text(source, "filter 'source'")
        made = cls(tuple(sources), _date(value, "date_from"), _date(value, "date_to"))
        if made.date_from and made.date_to and made.date_from > made.date_to:
            raise InputRejected(f"date_from {made.date_from} is after date_to {made.date_to}")
        return made if made != cls() else None

    def allows(self, source: str, stated_date: str | None) -> bool:
        if self.sources and not any(_same_source(source, s) for s in self.sources):
            return False
        if self.date_from or self.date_to:
            day = parse_stated_date(stated_date)
            if day is None or (self.date_from and day < self.date_from) or (self.date_to and day > self.date_to):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"source": list(self.sources), "date_from": self.date_from and self.date_from.isoformat(),
                "date_to": self.date_to and self.date_to.isoformat()}


def _date(value: Mapping[str, Any], key: str) -> dt.date | None:
    raw = value.get(key)
    if raw in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(raw))
    except ValueError:
        raise InputRejected(f"filter {key!r} must be a date like 2025-10-22, got {raw!r}") from None


def _same_source(source: str, wanted: str) -> bool:
    path, want = PurePosixPath(source).as_posix(), PurePosixPath(wanted).as_posix().strip("/")
    return path == want or path.endswith("/" + want)


@lru_cache(maxsize=1024)
def parse_stated_date(text: str | None) -> dt.date | None:
    """The day an article states ("22 October 2025", "Oct 22, 2025", "2025-10-22"), or None."""
    if not text:
        return None
    from dateutil import parser

    try:
        return parser.parse(text, fuzzy=True, dayfirst=True, default=dt.datetime(1900, 1, 1)).date()
    except (ValueError, OverflowError):
        return None
