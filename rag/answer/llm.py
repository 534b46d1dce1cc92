"""LLM answering through the `openai` package, against OpenAI or any OpenAI-compatible endpoint.

One retry layer only (ours; the SDK's is switched off), bounded by `llm_max_retries` and by one time
budget, `llm_timeout`, that every attempt and every wait share, so the worst case is known.
Every [n] marker in the reply is validated against the passages that were sent.
"""

from __future__ import annotations

import time
from pathlib import Path
from string import Template
from typing import Callable, Sequence

from rag.answer.citations import (
    ABSTENTION,
    Citation,
    best_supporting_span,
    citation_for,
    extract_markers,
    instructions_in,
    is_abstention,
)
from rag.config import Settings
from rag.errors import LLMAuthError, LLMUnavailable
from rag.injection import repeats_planted
from rag.search import Passage

_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


def prompt(name: str) -> str:
    return (_PROMPTS / name).read_text(encoding="utf-8")


def build_messages(question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
    blocks = "\n".join(
        f'<passage id="{i}" title="{_attr(p.title)}">\n{p.text}\n</passage>' for i, p in enumerate(passages, start=1)
    )
    user = Template(prompt("answer_user.txt")).safe_substitute(passages=blocks, question=question)
    return [{"role": "system", "content": prompt("answer_system.txt")}, {"role": "user", "content": user}]


def _attr(text: str) -> str:
    return text.replace('"', "'").replace("<", "(").replace(">", ")")


def complete(messages: list[dict[str, str]], settings: Settings, on_token: Callable[[str], None] | None = None) -> str:
    """The model's reply text; LLMUnavailable (or LLMAuthError) with a clear reason otherwise.

    The one retry layer is ours (the SDK's is off): up to `llm_max_retries` retries of timeouts, 429s,
    5xx and dropped connections, honouring Retry-After, never retrying auth errors, and everything,
    waits included, inside one `llm_timeout` budget: a call never takes longer than that."""
    import openai

    if not settings.openai_api_key and not settings.openai_base_url:
        raise LLMUnavailable("LLM mode needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)")
    deadline = time.monotonic() + settings.llm_timeout
    where = settings.openai_base_url or "OpenAI"
    for attempt in range(settings.llm_max_retries + 1):
        remaining = deadline - time.monotonic()
        client = openai.OpenAI(api_key=settings.openai_api_key or "not-needed", base_url=settings.openai_base_url,
                               timeout=max(remaining, 0.1), max_retries=0)
        try:
            return _request(client, messages, settings, on_token, deadline)
        except (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                openai.InternalServerError) as exc:
            failure = _describe(exc, where, settings)
            wait = _retry_after(exc, attempt)
            if attempt == settings.llm_max_retries or time.monotonic() + wait >= deadline:
                raise LLMUnavailable(failure) from None
            time.sleep(wait)
        except openai.AuthenticationError:
            raise LLMAuthError(f"the LLM endpoint ({where}) rejected the API key (401); check OPENAI_API_KEY") from None
        except openai.PermissionDeniedError:
            raise LLMAuthError(f"the LLM endpoint ({where}) denied access (403)") from None
        except openai.APIStatusError as exc:
            raise LLMUnavailable(f"the LLM endpoint ({where}) failed with HTTP {exc.status_code}") from None
        except (openai.OpenAIError, ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
            raise LLMUnavailable(f"the LLM endpoint ({where}) sent a reply we could not read "
                                 f"({type(exc).__name__})") from None
    raise AssertionError("unreachable: the loop returns or raises")


def _request(client, messages: list[dict[str, str]], settings: Settings, on_token: Callable[[str], None] | None,
             deadline: float) -> str:
    options = {"model": settings.openai_model, "messages": messages, "temperature": 0,
               "max_tokens": settings.llm_max_tokens}
    if on_token is None:
        reply = client.chat.completions.create(**options)
        return reply.choices[0].message.content or ""
    parts: list[str] = []
    with client.chat.completions.create(**options, stream=True) as stream:
        for event in stream:
            if time.monotonic() > deadline:  # a stream that trickles on past the budget
                raise LLMUnavailable(f"the LLM's answer did not finish within {settings.llm_timeout:g} s")
            delta = event.choices[0].delta.content if event.choices else None
            if delta:
                parts.append(delta)
                on_token(delta)
    return "".join(parts)


def _describe(exc: Exception, where: str, settings: Settings) -> str:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return f"the LLM endpoint ({where}) did not answer within {settings.llm_timeout:g} s"
    if isinstance(exc, openai.RateLimitError):
        return f"the LLM endpoint ({where}) is rate limiting (429)"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot connect to the LLM endpoint ({where})"
    return f"the LLM endpoint ({where}) failed with HTTP {getattr(exc, 'status_code', '?')}"


def _retry_after(exc: Exception, attempt: int) -> float:
    """Seconds to wait before the next attempt: the server's Retry-After, else exponential backoff."""
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    try:
        return max(float(header), 0.0) if header is not None else min(0.5 * 2 ** attempt, 4.0)
    except ValueError:
        return min(0.5 * 2 ** attempt, 4.0)


def answer_llm(question: str, passages: Sequence[Passage], settings: Settings,
               on_token: Callable[[str], None] | None = None) -> tuple[str, list[Citation], bool, list[str]]:
    """(answer with renumbered markers, citations, abstained, warnings)."""
    reply = complete(build_messages(question, passages), settings, on_token)
    if repeats_planted(reply, [instructions_in(p) for p in passages]):
        # Output validation: the model followed text planted in an article. Never shown.
        raise LLMUnavailable("the model's reply repeated what an article's embedded instructions asked for")
    sentences, cited, warnings = extract_markers(reply, len(passages))
    text = " ".join(sentences)
    if not any(cited):
        if not text or is_abstention(text):
            return text or ABSTENTION, [], True, warnings
        # An answer that cites nothing cannot be checked: it is never shown as one.
        raise LLMUnavailable("the model's reply cited none of the passages")
    return _attach_citations(sentences, cited, passages) + (False, warnings)


def _attach_citations(sentences: list[str], cited: list[list[int]],
                      passages: Sequence[Passage]) -> tuple[str, list[Citation]]:
    """Each marker becomes a citation of the passage sentence that best supports its sentence,
    numbered in order of first use."""
    citations: list[Citation] = []
    by_key: dict[tuple[str, int], int] = {}
    out = []
    for sentence, numbers in zip(sentences, cited):
        markers = ""
        for n in numbers:
            passage = passages[n - 1]
            span = best_supporting_span(sentence, passage)
            key = (passage.id, span.start)
            if key not in by_key:
                by_key[key] = len(citations) + 1
                citations.append(citation_for(passage, span, by_key[key]))
            markers += f"[{by_key[key]}]"
        out.append(f"{sentence} {markers}".rstrip())
    return " ".join(out), citations
