"""The Streamlit chat: a thin shell over `rag.Pipeline`. Run with `make run`.

Article and model text only ever reaches the page as escaped Markdown (rag.render) or st.text:
never as HTML, never as live Markdown.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import streamlit as st

from rag import Pipeline, RagError, Settings
from rag.config import MODES
from rag.render import anchor_id, answer_markdown, escape_markdown, quote_in_context

st.set_page_config(page_title="Ask the news, with citations", page_icon="📰")
EXAMPLE = "Why was the Budapest summit cancelled?"


@st.cache_resource(show_spinner=False)
def load_pipeline(settings: Settings) -> Pipeline:
    """One pipeline (store, model) per process and configuration, shared by every browser session."""
    from rag.redact import install

    install(settings)  # secrets redacted from every log line, whatever the level
    return Pipeline(settings)


def ensure_index(pipeline: Pipeline) -> None:
    """First start: index the corpus with a visible progress bar instead of a blank page."""
    if not pipeline.is_empty():
        return
    bar = st.progress(0.0, text="Indexing the articles for the first time…")
    pipeline.ingest(progress=lambda done, total: bar.progress(done / total, text=f"Embedding {done}/{total} chunks"))
    bar.empty()


# ---- the answer and its sources
_KIND_CAPTIONS = {"overview": "Overview: the central sentences of the articles", "timeline": "Timeline, in date order",
                  "articles": "The articles in the index"}


def render_answer(message: dict[str, Any], index: int) -> None:
    if message.get("notice"):
        st.info(message["notice"], icon="ℹ️")
    if message["abstained"]:
        st.warning(escape_markdown(message["answer"]), icon="🤷")
    else:
        if message.get("kind") in _KIND_CAPTIONS:
            st.caption(_KIND_CAPTIONS[message["kind"]])
        st.markdown(answer_markdown(message["answer"], {c["id"] for c in message["citations"]}, index))
    for conflict in message.get("conflicts") or []:
        first, second = conflict["citations"]
        st.warning(f"The sources disagree on {escape_markdown(conflict['about'])}: "
                   f"“{escape_markdown(conflict['figures'][0])}” \\[{first}\\] against "
                   f"“{escape_markdown(conflict['figures'][1])}” \\[{second}\\].", icon="⚖️")
    if message.get("query") and message["query"] != message["question"]:
        st.caption(f"Searched for: {escape_markdown(message['query'])}")
    for citation in message["citations"]:
        render_source(citation, message["documents"].get(citation["source"], {}), index)


def render_source(citation: dict[str, Any], document: dict[str, Any], index: int) -> None:
    with st.container(border=True):
        st.subheader(f"\\[{citation['id']}\\] {escape_markdown(citation['title'] or citation['source'])}",
                     anchor=anchor_id(index, citation["id"]))
        facts = [citation["source"], document.get("publisher"), document.get("date")]
        st.caption(" · ".join(escape_markdown(str(f)) for f in facts if f))
        if citation["also_in"]:
            st.caption("also in " + ", ".join(escape_markdown(s) for s in citation["also_in"]))
        context = document.get("contexts", {}).get(str(citation["id"]))
        if context:
            st.markdown(context)
        else:  # fail closed: show the quote plainly rather than highlight the wrong words
            st.markdown(escape_markdown(citation["quote"]))
            st.caption("The article has changed since this answer, so the passage is not highlighted.")


def answer_message(pipeline: Pipeline, answer: Any) -> dict[str, Any]:
    """The chat history entry: the answer plus what its source entries show, computed once."""
    message = {"role": "assistant", **answer.to_dict()}
    message.pop("passages")  # not shown; keeps the session small
    meta = {row["source"]: row for row in pipeline.sources()}
    documents: dict[str, dict[str, Any]] = {}
    texts: dict[str, str | None] = {}  # each cited article read once, however many citations it has
    for c in answer.citations:
        doc = documents.setdefault(c.source, {"publisher": meta.get(c.source, {}).get("publisher"),
                                              "date": meta.get(c.source, {}).get("date"), "contexts": {}})
        if c.source not in texts:
            try:
                texts[c.source] = pipeline.document_text(c.source)
            except (RagError, OSError):  # gone since the answer was made: no highlight, never a wrong one
                texts[c.source] = None
        context = quote_in_context(texts[c.source], c.start, c.end, c.quote) if texts[c.source] else None
        doc["contexts"][str(c.id)] = context.markdown() if context else None
    message["documents"] = documents
    return message


def ask(pipeline: Pipeline, question: str) -> None:
    history = st.session_state.messages
    asked = [m["content"] for m in history if m["role"] == "user"]
    with st.chat_message("user"):
        st.text(question)
    history.append({"role": "user", "content": question})
    with st.chat_message("assistant"):
        streamed = st.empty()
        tokens: list[str] = []

        def on_token(token: str) -> None:  # LLM mode: show the answer as it is written
            tokens.append(token)
            streamed.markdown(escape_markdown("".join(tokens)) + " ▌")

        try:
            with st.spinner("Searching the articles…"):
                answer = pipeline.ask(question, asked, k=st.session_state.k, mode=st.session_state.mode,
                                      on_token=on_token)
        except RagError as exc:
            streamed.empty()
            st.error(escape_markdown(str(exc), inline=True))
            return
        streamed.empty()
        message = answer_message(pipeline, answer)
        history.append(message)
        render_answer(message, len(history) - 1)


# ---- the sidebar
def sidebar(pipeline: Pipeline) -> None:
    with st.sidebar:
        st.header("Articles")
        status = pipeline.status()
        when = (dt.datetime.fromtimestamp(status["indexed_at"]).strftime("%Y-%m-%d %H:%M")
                if status["indexed_at"] else "never")
        st.caption(f"{status['documents']} documents · {status['chunks']} chunks · "
                   f"{status['duplicate_groups']} near-duplicate group(s) · last indexed {when}")
        upload_articles(pipeline)
        if st.button("Re-index the corpus", help="Picks up added, edited and deleted files"):
            bar = st.progress(0.0, text="Re-indexing…")
            try:
                report = pipeline.ingest(progress=lambda d, t: bar.progress(d / t, text=f"Embedding {d}/{t} chunks"))
            except RagError as exc:
                st.error(escape_markdown(str(exc), inline=True))
            else:
                bar.empty()
                st.success(f"{report.documents} documents: {report.added} added, {report.updated} updated, "
                           f"{report.removed} removed")
        st.header("Answering")
        st.radio("Mode", MODES, key="mode", horizontal=True,
                 help="extractive works offline; llm needs OPENAI_API_KEY or OPENAI_BASE_URL; auto picks")
        settings = pipeline.settings
        if st.session_state.mode == "llm" and not (settings.openai_api_key or settings.openai_base_url):
            st.warning("LLM mode needs OPENAI_API_KEY (or OPENAI_BASE_URL): answers stay extractive until then.")
        st.slider("Passages to read (k)", 1, 20, key="k")
        if st.button("Clear chat"):
            st.session_state.messages = []


def upload_articles(pipeline: Pipeline) -> None:
    limit_mb = max(1, pipeline.settings.max_file_bytes // 1_000_000)
    files = st.file_uploader("Add articles", type=["txt", "md", "markdown", "html", "htm"], accept_multiple_files=True,
                             max_upload_size=limit_mb, help=f"Up to {limit_mb} MB each")
    done = st.session_state.setdefault("uploaded", set())
    for file in files or []:
        if file.file_id in done:
            continue
        done.add(file.file_id)
        try:
            path, report = pipeline.add_upload(file.name, file.getvalue())
        except RagError as exc:
            st.error(escape_markdown(f"{file.name} was not added: {exc}", inline=True))
        else:
            st.success(escape_markdown(f"{file.name} added as {path.name} ({report.chunks} chunks)", inline=True))


# ---- the page
def main() -> None:
    try:
        pipeline = load_pipeline(Settings.from_env())
    except RagError as exc:  # e.g. a nonsense setting in the environment
        st.error(escape_markdown(str(exc), inline=True))
        st.stop()
    st.session_state.setdefault("messages", [])
    st.session_state.setdefault("mode", pipeline.settings.mode)
    st.session_state.setdefault("k", pipeline.settings.k)
    st.title("Ask the news")
    st.caption("Answers come only from the indexed articles; every sentence cites its passage.")
    try:
        ensure_index(pipeline)
        with st.spinner("Loading the search index and model…"):
            pipeline.warm_up()  # once per process (the pipeline is cached), not on the first question
    except RagError as exc:
        st.error(escape_markdown(str(exc), inline=True))
        st.stop()
    sidebar(pipeline)
    for index, message in enumerate(st.session_state.messages):
        with st.chat_message(message["role"]):
            if message["role"] == "assistant":
                render_answer(message, index)
            else:
                st.text(message["content"])
    typed = st.chat_input(f"Ask about the articles, e.g. {EXAMPLE}")
    # A link like /?q=Why+was+the+Budapest+summit+cancelled%3F asks its question once: shareable questions.
    linked = st.query_params.get("q") if not st.session_state.get("asked_link") else None
    st.session_state["asked_link"] = True
    if question := typed or linked:
        ask(pipeline, question)


main()
