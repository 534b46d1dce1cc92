"""The Streamlit chat: a thin shell over `rag.Pipeline`. Run with `make run`."""

from __future__ import annotations

import streamlit as st

from rag import Pipeline, RagError, Settings

st.set_page_config(page_title="News QA with citations", page_icon="📰")


@st.cache_resource(show_spinner=False)
def load_pipeline() -> Pipeline:
    return Pipeline(Settings.from_env())


def ensure_index(pipeline: Pipeline) -> None:
    if not pipeline.is_empty():
        return
    bar = st.progress(0.0, text="Indexing the articles for the first time…")
    pipeline.ingest(progress=lambda done, total: bar.progress(done / total, text=f"Embedding {done}/{total} chunks"))
    bar.empty()


def show_answer(message: dict) -> None:
    if message.get("notice"):
        st.info(message["notice"])
    # Article and model text is shown as text, never as HTML or Markdown.
    if message["abstained"]:
        st.warning(message["answer"], icon="🤷")
    else:
        st.text(message["answer"])
    for c in message["citations"]:
        also = f" · also in {', '.join(c['also_in'])}" if c["also_in"] else ""
        with st.expander(f"[{c['id']}] {c['title']} — {c['source']}{also}"):
            st.text(c["quote"])
            st.caption(f"characters {c['start']}–{c['end']} of the cleaned article")


pipeline = load_pipeline()
st.title("Ask the news")
st.caption("Answers come only from the indexed articles; every sentence cites its passage.")
try:
    ensure_index(pipeline)
    with st.spinner("Loading the search index and model…"):
        pipeline.warm_up()  # once per process (the pipeline is cached), not on the first question
except RagError as exc:
    st.error(str(exc))
    st.stop()

history = st.session_state.setdefault("messages", [])
for message in history:
    with st.chat_message(message["role"]):
        show_answer(message) if message["role"] == "assistant" else st.text(message["content"])

typed = st.chat_input("Ask about the articles, e.g. Why was the Budapest summit cancelled?")
# A link like /?q=Why+was+the+Budapest+summit+cancelled%3F asks its question once: shareable questions.
linked = st.query_params.get("q") if not history and not st.session_state.get("asked_link") else None
st.session_state["asked_link"] = True
if question := typed or linked:
    with st.chat_message("user"):
        st.text(question)
    asked = [m["content"] for m in history if m["role"] == "user"]
    history.append({"role": "user", "content": question})
    with st.chat_message("assistant"):
        try:
            with st.spinner("Searching the articles…"):
                answer = pipeline.ask(question, asked).to_dict()
        except RagError as exc:
            st.error(str(exc))
        else:
            message = {"role": "assistant", **answer}
            history.append(message)
            show_answer(message)
