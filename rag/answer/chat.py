"""Follow-up condensing: turn "How did Moscow react to that?" into a question that stands alone.

Offline the rewrite is deterministic. Whether a question is a follow-up is read from what it lacks
(a pronoun with nothing in the question to point to, an opening "And…", no subject of its own); a
follow-up borrows the words of the previous question, resolved in turn against the ones before it. With an LLM configured the
LLM rewrites it (prompt in rag/prompts/condense_*.txt), falling back to the deterministic rewrite
when the LLM fails or replies with something that is not a question.
"""

from __future__ import annotations

import re
from string import Template
from typing import TYPE_CHECKING, Sequence

from rag.text import STOPWORDS, content_terms

if TYPE_CHECKING:
    from rag.config import Settings

MAX_HISTORY = 6  # earlier questions sent to the LLM rewrite
_QUESTION_TERMS = content_terms("who what when where why how which whose whom tell me about say said happen "
                                "happened please")

# Words that point outside the question: a question using one continues the conversation.
_POINTERS = {"it", "they", "them", "this", "these", "those", "there", "then", "such", "same", "else"}
# Words that point to a person or thing: inside the question when a name comes before them
# ("What did Russia demand in its memorandum?"), outside it otherwise ("What did he say?").
_ANAPHORS = {"he", "she", "him", "his", "her", "hers", "its", "their", "theirs"}
_OPENERS = re.compile(r"^\s*(and|so|also|what about|how about|and what|but)\b", re.I)
_NAME = re.compile(r"(?<!^)(?<![.?!]\s)\b[A-Z][\w'’-]+")
ELLIPTICAL_TERMS = 2  # "Why?", "What happened next?": too few words of its own to stand alone
# A verb whose complement is left out ("How did the Kremlin react?" — to what?) leans on the conversation.
_OPEN_COMPLEMENT = re.compile(r"\b(react|respond|reply|comment|retaliate)(ed|s)?\W*$", re.I)


def is_follow_up(question: str) -> bool:
    """Whether the question leans on the conversation: a pronoun with nothing in the question to refer
    to, an opening "And…"/"What about…", a verb missing its complement ("How did the Kremlin react?"),
    or too little of its own and no name ("Why?")."""
    if _OPENERS.match(question):
        return True
    tokens = re.findall(r"[\w'’]+", question)
    for i, token in enumerate(tokens):
        word = token.lower()
        if word in _POINTERS or word == "that" and i == len(tokens) - 1:
            return True
        if word in _ANAPHORS and not _NAME.search(" ".join(tokens[:i])):
            return True
    if _OPEN_COMPLEMENT.search(question):
        return True
    own = content_terms(question) - _QUESTION_TERMS
    return len(own) <= ELLIPTICAL_TERMS and not _NAME.search(question)


def condense(question: str, history: Sequence[str] | None) -> str:
    """The query to search for: the question itself, or a follow-up joined with what the conversation was
    about (the previous question, itself resolved against the ones before it). A question that stands
    alone never picks up earlier topics."""
    if not history or not is_follow_up(question):
        return question
    previous = condense(history[-1], history[:-1])
    replaced = _subject_and_verb(previous) if _NAME.search(question) else set()
    context = [w for w in re.findall(r"[\w'’-]+", previous) if w not in replaced]
    context = [w for w in context
               if w.lower() not in STOPWORDS | _POINTERS | _ANAPHORS | {"that"} and w.lower() not in _QUESTION_TERMS
               and not re.search(rf"\b{re.escape(w)}\b", question, re.I)]
    context = list(dict.fromkeys(context))
    return f"{question} ({' '.join(context)})" if context else question


_SUBJECT_VERB = re.compile(r"^\W*(?i:how|what|why|when|where|who|which)\b[^?]*?\b(?i:did|does|do|has|have|had|was|were|"
                           r"is|are|will|would|can|could)\s+(?:the\s+)?((?:[A-Z][\w'’-]*\s+)+)([a-z]+)\b")


def _subject_and_verb(question: str) -> set[str]:
    """The named subject and the verb of a wh-question ("How did [Moscow] [react] to the sanctions?"). A
    follow-up that names its own subject ("And what did Trump call them?") replaces these: only the rest
    of the earlier question ("the sanctions on Rosneft and Lukoil") is what its pronoun can mean."""
    match = _SUBJECT_VERB.match(question)
    return set(match.group(1).split()) | {match.group(2)} if match else set()


def condense_with_llm(question: str, history: Sequence[str] | None, settings: "Settings") -> str:
    """The LLM's stand-alone rewrite of a follow-up; the deterministic one if the LLM fails."""
    from rag.answer.llm import complete
    from rag.errors import LLMUnavailable

    if not history:
        return question
    try:
        reply = complete(condense_messages(question, history), settings)
    except LLMUnavailable:
        return condense(question, history)
    # The first line only: small models add an explanation below the rewrite.
    lines = [line.strip().strip('"') for line in reply.strip().splitlines() if line.strip()]
    rewritten = lines[0] if lines else ""
    if not rewritten or len(rewritten) > settings.max_question_chars:
        return condense(question, history)
    return rewritten


def condense_messages(question: str, history: Sequence[str]) -> list[dict[str, str]]:
    """The rewrite prompt: the last few questions only (the answers would make it long for a CPU model)."""
    from rag.answer.llm import prompt

    user = Template(prompt("condense_user.txt")).safe_substitute(
        history="\n".join(f"- {q}" for q in history[-MAX_HISTORY:]), question=question)
    return [{"role": "system", "content": prompt("condense_system.txt")}, {"role": "user", "content": user}]


def suggested_questions(sources: Sequence[dict], n: int = 3) -> list[str]:
    """Questions to offer on an empty chat, drawn from the index itself: the corpus-wide overview, then
    one question per article title, newest stated date first, one article per near-duplicate group."""
    seen: set[str] = set()
    titled = []
    for doc in sorted(sources, key=lambda d: (d.get("date") or "", d["title"]), reverse=True):
        group = {doc["source"], *doc.get("duplicates", [])}
        if doc["title"] and not group & seen:
            titled.append(f"What do the articles say about “{doc['title']}”?")
        seen |= group
    return ["Summarize the articles.", *titled][:n]
