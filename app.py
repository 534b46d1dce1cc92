"""The Streamlit chat: a thin shell over `rag.Pipeline`. Run with `make run`.

Article and model text only ever reaches the page as escaped Markdown (rag.serving.render) or st.text:
never as HTML, never as live Markdown.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from rag import Pipeline, RagError, Settings
from rag.config import MODES
from rag.serving.conversations import Conversations, to_markdown
from rag.errors import ConversationsUnavailable, InputRejected
from rag.serving.render import (
    anchor_id,
    answer_markdown,
    escape_markdown,
    left_out_markdown,
    paragraph_start,
    quotes_in_paragraph,
    short_quote,
    source_entries,
)
from rag.ingestion.uploads import is_upload, label

st.set_page_config(page_title="Ask the news, with citations", page_icon="📰")
EXAMPLE = "Why was the Budapest summit cancelled?"


@st.cache_resource(show_spinner=False)
def load_pipeline(settings: Settings) -> Pipeline:
    """One pipeline (store, model) per process and configuration, shared by every browser session."""
    from rag.redact import install

    install(settings)  # secrets redacted from every log line, whatever the level
    return Pipeline(settings)


@st.cache_resource(show_spinner=False)
def load_conversations(data_dir: Path) -> Conversations:
    return Conversations(data_dir)


def conversations(pipeline: Pipeline) -> Conversations:
    """The saved chats; when their file cannot be used, chats kept for this browser session only."""
    chats = load_conversations(pipeline.settings.data_dir)
    try:
        chats.list()
        return chats
    except ConversationsUnavailable as exc:
        st.sidebar.error(escape_markdown(str(exc), inline=True))
        if "session_chats" not in st.session_state:
            st.session_state.session_chats = Conversations(Path(tempfile.mkdtemp(prefix="rag-chats-")))
        return st.session_state.session_chats


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


def render_answer(message: dict[str, Any], index: int, settings: Settings) -> None:
    if message.get("error"):
        st.error(f"Not answered: {escape_markdown(message['error'], inline=True)}", icon="⚠️")
        return
    if message.get("notice"):
        st.info(message["notice"], icon="ℹ️")
    if message["abstained"]:
        st.warning(escape_markdown(message["answer"]), icon="🤷")
    else:
        if message.get("kind") in _KIND_CAPTIONS:
            st.caption(_KIND_CAPTIONS[message["kind"]])
        st.markdown(answer_markdown(message["answer"], {c["id"]: c["quote"] for c in message["citations"]}, index))
        st.caption(f"Answered by {escape_markdown(settings.openai_model, inline=True)} from the passages below, "
                   "each sentence checked against the passage it cites"
                   if message.get("mode") == "llm" else "Answered offline: sentences quoted from the articles")
    left_out = left_out_markdown(message.get("support") or [])
    if left_out:
        st.markdown(left_out)
    for conflict in message.get("conflicts") or []:
        first, second = conflict["citations"]
        st.warning(f"The sources disagree on {escape_markdown(conflict['about'])}: "
                   f"“{escape_markdown(conflict['figures'][0])}” \\[{first}\\] against "
                   f"“{escape_markdown(conflict['figures'][1])}” \\[{second}\\].", icon="⚖️")
    if message.get("query") and message["query"] != message["question"]:
        st.caption(f"Searched for: {escape_markdown(message['query'])}")
    render_sources(message, index, settings)


def render_sources(message: dict[str, Any], index: int, settings: Settings) -> None:
    """Under the answer, one line per cited paragraph: "[n] title · publisher — “quote…”", opening to
    the paragraph with the cited sentences highlighted and a way into the whole article."""
    documents = message.get("documents", {})
    if message.get("sources"):
        st.subheader("Sources", anchor=anchor_id(index))  # where the answer's [n] markers lead
    for entry in message.get("sources") or []:
        about = documents.get(entry["source"], {})
        numbers = " ".join(f"[{n}]" for n in entry["ids"])
        name = entry["title"] or label(entry["source"], settings)
        line = " · ".join(x for x in (name, about.get("publisher")) if x)
        with st.expander(escape_markdown(f"{numbers} {line} — “{short_quote(entry['quotes'][0])}”", inline=True)):
            if entry["markdown"]:
                st.markdown(entry["markdown"])
            else:  # fail closed: the quotes plainly rather than a highlight of the wrong words
                st.markdown(escape_markdown(" … ".join(entry["quotes"])))
                st.caption("The article has changed since this answer, so the passage is not highlighted.")
            facts = [label(entry["source"], settings), about.get("date")]
            st.caption(" · ".join(escape_markdown(str(f), inline=True) for f in facts if f))
            if entry["also_in"]:
                st.caption("also in " + ", ".join(escape_markdown(label(s, settings), inline=True)
                                                  for s in entry["also_in"]))
            st.button("Read the whole article", key=f"article-{index}-{entry['ids'][0]}", icon="📖",
                      on_click=st.session_state.update,
                      kwargs={"library": ("Read", entry["source"], entry["quotes"])})


def answer_message(pipeline: Pipeline, answer: Any) -> dict[str, Any]:
    """The chat history entry: the answer plus what its source entries show, computed once."""
    message = {"role": "assistant", **answer.to_dict()}
    message.pop("passages")  # not shown; keeps the session small
    meta = {row["source"]: row for row in pipeline.sources()}
    texts: dict[str, str | None] = {}  # each cited article read once, however many citations it has
    for source in dict.fromkeys(c.source for c in answer.citations):
        try:
            texts[source] = pipeline.document_text(source)
        except (RagError, OSError):  # gone since the answer was made: no highlight, never a wrong one
            texts[source] = None
    message["documents"] = {s: {"publisher": meta.get(s, {}).get("publisher"), "date": meta.get(s, {}).get("date")}
                            for s in texts}
    message["sources"] = source_entries(message["citations"], texts)
    return message


def render_chat(messages: list[dict[str, Any]], settings: Settings) -> list[int]:
    """Each question with its answer under it; returns the positions of questions not answered yet
    (sent while another was being answered, or cut short by a reload), oldest first."""
    answers = {m["for"]: m for m in messages if m["role"] == "assistant" and "for" in m}
    pending = []
    for position, message in enumerate(messages):
        if message["role"] != "user":
            continue
        with st.chat_message("user"):
            st.text(message["content"])
        if position in answers:
            with st.chat_message("assistant"):
                render_answer(answers[position], position, settings)
        else:
            pending.append(position)
    return pending


def answer_pending(pipeline: Pipeline, chats: Conversations, chat: int, messages: list[dict[str, Any]],
                   position: int) -> None:
    """Answer the question at `position`; the answer (or the error) is saved before it is shown, so a
    rerun started by the next question never loses it."""
    question = messages[position]["content"]
    earlier = [m["content"] for m in messages[:position] if m["role"] == "user"]
    with st.chat_message("assistant"):
        streamed = st.empty()
        tokens: list[str] = []

        def on_token(token: str) -> None:  # LLM mode: show the answer as it is written
            tokens.append(token)
            streamed.markdown(escape_markdown("".join(tokens)) + " ▌")

        try:
            with st.spinner("Searching the articles…"):
                answer = pipeline.ask(question, earlier, k=st.session_state.k, mode=st.session_state.mode,
                                      on_token=on_token)
            message = {**answer_message(pipeline, answer), "for": position}
        except RagError as exc:  # shown in place, under the question, which stays in the chat
            message = {"role": "assistant", "for": position, "question": question, "error": str(exc)}
        chats.append(chat, message)
        streamed.empty()
        render_answer(message, position, pipeline.settings)


# ---- the sidebar
def sidebar(pipeline: Pipeline) -> None:
    with st.sidebar:
        st.header("Articles")
        status = pipeline.status()
        when = (dt.datetime.fromtimestamp(status["indexed_at"]).strftime("%Y-%m-%d %H:%M")
                if status["indexed_at"] else "never")
        st.caption(f"{status['documents']} documents · {status['chunks']} chunks · "
                   f"{status['duplicate_groups']} near-duplicate group(s) · last indexed {when}")
        if flash := st.session_state.pop("flash", None):  # what the last action did, shown after its rerun
            st.success(flash)
        upload_articles(pipeline)
        library(pipeline)
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


def chat_sidebar(chats: Conversations, chat: int | None) -> None:
    """The saved chats: start one, switch, rename, export as Markdown, delete (after a confirmation)."""
    with st.sidebar:
        st.header("Chats")
        st.button("New chat", icon="➕", use_container_width=True, on_click=open_chat, args=(None,))
        for saved in chats.list()[:50]:
            st.button(escape_markdown(saved.title, inline=True), key=f"chat-{saved.id}", use_container_width=True,
                      type="primary" if saved.id == chat else "secondary", on_click=open_chat, args=(saved.id,))
        if chat is None:
            return
        title = chats.get(chat).title
        with st.expander("This chat"):
            with st.form(f"rename-{chat}", border=False):
                renamed = st.text_input("Name", value=title, max_chars=80)
                if st.form_submit_button("Rename") and renamed.strip() != title:
                    try:
                        chats.rename(chat, renamed)
                    except RagError as exc:  # e.g. an empty name: the chat keeps its name
                        st.error(escape_markdown(str(exc), inline=True))
                    else:
                        st.rerun()
            st.download_button("Export as Markdown", to_markdown(title, chats.messages(chat)), icon="⬇️",
                               file_name=f"chat-{chat}.md", mime="text/markdown", use_container_width=True)
            if st.session_state.get("deleting") != chat:
                st.button("Delete this chat", icon="🗑️", use_container_width=True,
                          on_click=lambda: st.session_state.update(deleting=chat))
            else:
                st.warning(f"Delete “{escape_markdown(title, inline=True)}” and its answers? This cannot be undone.")
                yes, no = st.columns(2)
                if yes.button("Delete", type="primary"):
                    chats.delete(chat)
                    st.session_state.deleting = None
                    open_chat(None)
                    st.rerun()
                no.button("Keep", on_click=lambda: st.session_state.update(deleting=None))


def suggest(pipeline: Pipeline) -> None:
    """An empty chat offers questions drawn from the index (its overview and article titles)."""
    from rag.answer.chat import suggested_questions

    questions = suggested_questions(pipeline.sources())
    if questions:
        st.caption("Try one of these, or ask in your own words below:")
    for n, question in enumerate(questions):
        st.button(escape_markdown(question, inline=True), key=f"suggested-{n}", on_click=st.session_state.update,
                  kwargs={"suggested": question})  # (a label is Markdown: an article title is shown as text)


def open_chat(chat: int | None) -> None:
    """Show a saved chat (kept in the address, so a reload shows it again), or a new empty one."""
    if chat is None:
        st.query_params.pop("chat", None)
    else:
        st.query_params["chat"] = str(chat)


def current_chat(chats: Conversations) -> int | None:
    wanted = st.query_params.get("chat", "")
    try:
        return chats.get(int(wanted)).id if wanted.isdigit() else None
    except InputRejected:  # deleted, or another data dir's: a new chat, saved with its first question
        return None


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
            path, chunks = pipeline.add_upload(file.name, file.getvalue())
        except RagError as exc:
            st.error(escape_markdown(f"{file.name} was not added: {exc}", inline=True))
        else:  # rerun, so the counts above and the library below include it
            st.session_state.flash = escape_markdown(f"{path.name} added ({chunks} chunk{'s' * (chunks != 1)})",
                                                     inline=True)
            st.rerun()


def library(pipeline: Pipeline) -> None:
    """Every indexed article: what it is, read its cleaned text, remove it (after a confirmation)."""
    articles = pipeline.sources()
    with st.expander(f"Browse the {len(articles)} articles"):
        for article in articles:
            name = label(article["source"], pipeline.settings)
            st.markdown(f"**{escape_markdown(article['title'] or name)}**")
            facts = [article.get("publisher"), article.get("date"), f"{article['chunks']} chunks", name]
            st.caption(" · ".join(escape_markdown(str(f), inline=True) for f in facts if f))
            if article["duplicates"]:
                st.caption("near-duplicate of " + ", ".join(
                    escape_markdown(label(d, pipeline.settings), inline=True) for d in article["duplicates"]))
            read, remove = st.columns(2)
            # The dialogs open from the main script, after the sidebar (not from inside it).
            for column, action, icon in ((read, "Read", "📖"), (remove, "Remove", "🗑️")):
                column.button(action, key=f"{action}-{article['source']}", icon=icon, use_container_width=True,
                              on_click=st.session_state.update, kwargs={"library": (action, article["source"])})


def open_library_dialog(pipeline: Pipeline) -> None:
    """The dialog a library button asked for; it stays asked for until it is closed or dismissed."""
    request = st.session_state.get("library")
    st.session_state["library_shown"] = request
    action, source, *quotes = request or (None, None)
    if action == "Read":
        read_article(pipeline, source, quotes[0] if quotes else [])
    elif action == "Remove":
        remove_article(pipeline, source)


def close_library_dialog() -> None:
    """Forget the dialog's request, unless another one replaced it: a click on another library button
    can land in the same rerun as dismissing this dialog (Escape, then a quick click), and must win."""
    if st.session_state.get("library") == st.session_state.get("library_shown"):
        st.session_state.pop("library", None)


@st.dialog("Article", width="large", on_dismiss=close_library_dialog)
def read_article(pipeline: Pipeline, source: str, quotes: list[str] | None = None) -> None:
    """The cleaned article. Opened from a source, it starts at the cited paragraph (highlighted), with
    what comes before it folded away above: the view a reader would scroll to."""
    try:
        text = pipeline.document_text(source)
    except (RagError, OSError) as exc:
        st.error(escape_markdown(str(exc), inline=True))
        return
    st.caption(escape_markdown(label(source, pipeline.settings), inline=True))
    spans = [(text.find(q), text.find(q) + len(q), q) for q in quotes or [] if q in text]
    if not spans:
        st.markdown(escape_markdown(text))
        return
    start = paragraph_start(text, min(a for a, _, _ in spans))
    end = text.find("\n", max(b for _, b, _ in spans))
    end = len(text) if end < 0 else end
    if start:
        with st.expander("The article before this passage"):
            st.markdown(escape_markdown(text[:start]))
    cited = quotes_in_paragraph(text, [s for s in spans if paragraph_start(text, s[0]) == start])
    st.markdown(cited.markdown() if cited else escape_markdown(text[start:end]))
    st.markdown(escape_markdown(text[end:]))


@st.dialog("Remove this article?", on_dismiss=close_library_dialog)
def remove_article(pipeline: Pipeline, source: str) -> None:
    name = label(source, pipeline.settings)
    upload = is_upload(source, pipeline.settings)
    st.markdown(f"**{escape_markdown(name, inline=True)}** leaves the index"
                + (", and the uploaded file is deleted." if upload else
                   f". Its file stays in {escape_markdown(str(pipeline.settings.corpus_dir), inline=True)}, so "
                   "re-indexing the corpus brings it back."))
    confirm, cancel = st.columns(2)
    if confirm.button("Remove", type="primary", use_container_width=True):
        try:
            chunks = pipeline.remove(source)
        except RagError as exc:
            st.error(escape_markdown(str(exc), inline=True))
            return
        st.session_state.flash = escape_markdown(f"{name} removed ({chunks} chunk{'s' * (chunks != 1)})",
                                                 inline=True)
        close_library_dialog()
        st.rerun()
    if cancel.button("Cancel", use_container_width=True):
        close_library_dialog()
        st.rerun()


# ---- the page
def main() -> None:
    try:
        pipeline = load_pipeline(Settings.from_env())
    except RagError as exc:  # e.g. a nonsense setting in the environment
        st.error(escape_markdown(str(exc), inline=True))
        st.stop()
    st.session_state.setdefault("mode", pipeline.settings.mode)
    st.session_state.setdefault("k", pipeline.settings.k)
    st.title("Ask the news")
    st.caption("Answers come only from the indexed articles; every sentence cites its passage.")
    try:
        ensure_index(pipeline)  # slow only on a first start; the chat input appears once it is done
        with st.spinner("Loading the search index and model…"):
            pipeline.warm_up()  # once per process (the pipeline is cached), not on the first question
    except RagError as exc:
        st.error(escape_markdown(str(exc), inline=True))
        st.stop()
    # The question is saved before anything else slow: a question sent while the previous one is being
    # answered starts a new run, and a run stopped before this point would lose it. (After the warm-up:
    # a question must not interrupt the first opening of the store.)
    chats = conversations(pipeline)
    chat = current_chat(chats)
    typed = st.chat_input(f"Ask about the articles, e.g. {EXAMPLE}")
    # A link like /?q=Why+was+the+Budapest+summit+cancelled%3F asks its question once: shareable questions.
    linked = st.query_params.get("q") if not st.session_state.get("asked_link") else None
    st.session_state["asked_link"] = True
    if question := typed or linked or st.session_state.pop("suggested", None):
        if chat is None:
            chat = chats.create().id
            open_chat(chat)
        chats.append(chat, {"role": "user", "content": question})
    st.session_state["chat"] = chat
    sidebar(pipeline)
    open_library_dialog(pipeline)
    messages = chats.messages(chat) if chat is not None else []
    if not messages:
        suggest(pipeline)
    for position in render_chat(messages, pipeline.settings):
        answer_pending(pipeline, chats, chat, messages, position)
    chat_sidebar(chats, chat)  # last: its list and export include the answers just given


main()
