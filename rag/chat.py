"""Follow-up condensing: turn "How did Moscow react to that?" into a question that stands alone.

Offline the rewrite is deterministic: a follow-up (a pronoun or demonstrative pointing back, or a
very short question) borrows the content words of the previous question.
"""

from __future__ import annotations

import re
from typing import Sequence

from rag.text import STOPWORDS

_BACK_REFERENCES = {"that", "this", "it", "its", "they", "them", "their", "he", "him", "his", "she", "her",
                    "those", "these", "there", "then", "such", "same", "also", "else"}


def is_follow_up(question: str) -> bool:
    words = re.findall(r"[\w']+", question.lower())
    return len(words) <= 4 or any(w in _BACK_REFERENCES for w in words)


def condense(question: str, history: Sequence[str] | None) -> str:
    """The query to search for: the question itself, or a follow-up joined with the earlier context."""
    if not history or not is_follow_up(question):
        return question
    previous = history[-1]
    context = [w for w in re.findall(r"[\w'’-]+", previous) if w.lower() not in STOPWORDS | _BACK_REFERENCES]
    return f"{question} ({' '.join(context)})" if context else question
