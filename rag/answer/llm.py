"""LLM answering through the `openai` package, against OpenAI or any OpenAI-compatible endpoint.

One retry layer only (ours; the SDK's is switched off), bounded by `llm_max_retries` and by one time
budget, `llm_timeout`, that every attempt and every wait share, so the worst case is known.
Every [n] marker in the reply is validated against the passages that were sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Callable, Sequence

from rag.answer.citations import (
    ABSTENTION,
    Citation,
    best_supporting_span,
    citation_for,
    extract_markers,
    instructions_in,
    is_abstention,
)
from rag.answer.support import SentenceSupport, check_support
from rag.config import Settings
from rag.errors import LLMAuthError, LLMUnavailable
from rag.ingestion.injection import repeats_planted
from rag.retrieval.search import Passage

_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


def prompt(name: str) -> str:
    return (_PROMPTS / name).read_text(encoding="utf-8")


def build_messages(question: str, passages: Sequence[Passage],
                   budget: int | None = None) -> tuple[list[dict[str, str]], list[Passage]]:
    """The chat messages, and the passages they hold: in rank order while the prompt stays within
    `budget` tokens (cl100k; at least the first passage is always sent). A one-shot example turn comes
    first: small models cite reliably with it, and as a fixed prefix a server's prompt cache keeps it."""
    head = [{"role": "system", "content": prompt("answer_system.txt")},
            {"role": "user", "content": prompt("answer_example_user.txt").strip()},
            {"role": "assistant", "content": prompt("answer_example_assistant.txt").strip()}]
    template = Template(prompt("answer_user.txt"))
    blocks = [f'<passage id="{i}" title="{_attr(p.title)}">\n{p.text}\n</passage>'
              for i, p in enumerate(passages, start=1)]
    sent = len(blocks)
    if budget is not None:
        count = _token_counter()
        used = sum(count(m["content"]) + 4 for m in head) + count(template.safe_substitute(passages="", question=question))
        sent = 0
        for block in blocks:
            used += count(block) + 1
            if sent and used > budget:
                break
            sent += 1
    user = template.safe_substitute(passages="\n".join(blocks[:sent]), question=question)
    return [*head, {"role": "user", "content": user}], list(passages[:sent])


def _token_counter() -> Callable[[str], int]:
    from llama_index.core.utils import get_tokenizer  # cl100k_base from llama-index's bundled cache, offline

    encode = get_tokenizer()
    return lambda text: len(encode(text))


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """The size of a prompt in cl100k tokens (4 per message for the chat format's framing)."""
    count = _token_counter()
    return sum(count(m["content"]) + 4 for m in messages)


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
               on_token: Callable[[str], None] | None = None, embedder: Any = None) -> LLMAnswer:
    """The model's answer, its markers validated and (given the embedder) each sentence checked against
    the passages it cites: only supported sentences (and an abstention) stay in the answer text; every
    sentence, kept or not, is in `support`. LLMUnavailable when nothing usable is left."""
    messages, passages = build_messages(question, passages, settings.llm_prompt_tokens)
    reply = complete(messages, settings, on_token)
    if repeats_planted(reply, [instructions_in(p) for p in passages]):
        # Output validation: the model followed text planted in an article. Never shown.
        raise LLMUnavailable("the model's reply repeated what an article's embedded instructions asked for")
    sentences, cited, warnings = extract_markers(reply, len(passages))
    text = " ".join(sentences)
    if not any(cited) and (not text or is_abstention(text)):
        return LLMAnswer(text or ABSTENTION, [], True, warnings, [])
    if embedder is None:  # no support check
        if not any(cited):  # nothing can say which passage supports it: never shown as an answer
            raise LLMUnavailable("the model's reply cited none of the passages")
        markers, citations = _attach_citations(sentences, cited, passages)
        support = [SentenceSupport(s, m, None) for s, m in zip(sentences, markers)]
        return LLMAnswer(_joined(sentences, markers), citations, False, warnings, support)
    from rag.answer.extractive import sentence_vectors, stored_sentence_vectors

    support = check_support(question, sentences, cited, passages, lambda texts: sentence_vectors(embedder, texts),
                            stored_sentence_vectors(passages, embedder), recite=True)
    markers, citations = _attach_citations(sentences, [item.citations for item in support], passages)
    for item, ids in zip(support, markers):
        item.citations = ids
    kept = [i for i, item in enumerate(support) if item.supported or is_abstention(item.sentence)]
    if not any(support[i].supported for i in kept):
        raise LLMUnavailable("no sentence of the model's reply is supported by the passage it cites"
                             if any(cited) else "the model's reply cited none of the passages, and none supports it")
    for item in support:
        if item.supported is False:
            warnings.append(f"left out a sentence its cited passage does not support: {item.sentence[:80]!r}")
        elif item.recited:
            warnings.append(f"cited a sentence to the passage that supports it, not the one the model named: "
                            f"{item.sentence[:80]!r}")
    # Renumbered: the kept sentences' citations first, in order of use, then those only a left-out
    # sentence carries, so every id in `support` points into `citations`.
    order = list(dict.fromkeys([*(n for i in kept for n in markers[i]), *(n for ids in markers for n in ids)]))
    renumber = {old: new for new, old in enumerate(order, start=1)}
    citations = sorted(citations, key=lambda c: renumber[c.id])
    for c in citations:
        c.id = renumber[c.id]
    for item in support:
        item.citations = [renumber[n] for n in item.citations]
    return LLMAnswer(_joined([sentences[i] for i in kept], [support[i].citations for i in kept]), citations, False,
                     warnings, support)


@dataclass
class LLMAnswer:
    answer: str
    citations: list[Citation]
    abstained: bool
    warnings: list[str]
    support: list[SentenceSupport] = field(default_factory=list)


def _joined(sentences: Sequence[str], markers: Sequence[Sequence[int]]) -> str:
    return " ".join(f"{s} {''.join(f'[{n}]' for n in m)}".rstrip() for s, m in zip(sentences, markers))


def _attach_citations(sentences: list[str], cited: list[list[int]],
                      passages: Sequence[Passage]) -> tuple[list[list[int]], list[Citation]]:
    """Each marker becomes a citation of the passage sentence that best supports its sentence,
    numbered in order of first use; (each sentence's citation ids, the citations)."""
    citations: list[Citation] = []
    by_key: dict[tuple[str, int], int] = {}
    markers: list[list[int]] = []
    for sentence, numbers in zip(sentences, cited):
        ids = []
        for n in numbers:
            passage = passages[n - 1]
            span = best_supporting_span(sentence, passage)
            key = (passage.id, span.start)
            if key not in by_key:
                by_key[key] = len(citations) + 1
                citations.append(citation_for(passage, span, by_key[key]))
            if by_key[key] not in ids:
                ids.append(by_key[key])
        markers.append(ids)
    return markers, citations
