"""Follow-up condensing: turn "How did Moscow react to that?" into a question that stands alone.

Offline the rewrite is deterministic: a follow-up (a pronoun or demonstrative pointing back, or a
very short question) borrows the content words of the previous question. With an LLM configured the
LLM rewrites it (prompt in rag/prompts/condense_*.txt), falling back to the deterministic rewrite
when the LLM fails or replies with something that is not a question.
"""

from __future__ import annotations

import re
from string import Template
from typing import TYPE_CHECKING, Sequence

from rag.text import STOPWORDS

if TYPE_CHECKING:
    from rag.config import Settings

MAX_HISTORY = 6  # earlier questions sent to the LLM rewrite

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


def condense_with_llm(question: str, history: Sequence[str] | None, settings: "Settings") -> str:
    """The LLM's stand-alone rewrite of a follow-up; the deterministic one if the LLM fails."""
    from rag.answer.llm import complete, prompt
    from rag.errors import LLMUnavailable

    if not history:
        return question
    user = Template(prompt("condense_user.txt")).safe_substitute(
        history="\n".join(f"- {q}" for q in history[-MAX_HISTORY:]), question=question)
    try:
        reply = complete([{"role": "system", "content": prompt("condense_system.txt")},
                          {"role": "user", "content": user}], settings)
    except LLMUnavailable:
        return condense(question, history)
    rewritten = " ".join(reply.split()).strip('"')
    if not rewritten or len(rewritten) > settings.max_question_chars or "\n" in reply.strip():
        return condense(question, history)
    return rewritten
