"""The public operations over one data directory: ingest, retrieve, ask, sources."""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rag.config import Settings
from rag.errors import InputRejected, LLMUnavailable, RagError, StoreUnavailable
from rag.retrieval.filters import Filters
from rag.ingestion.manifest import Manifest
from rag.text import require_text

REFRESH_SECONDS = 2.0  # how often a long-lived pipeline checks whether another process published an index


def clean_question(question: str, max_chars: int) -> str:
    """The question without control characters, or InputRejected when there is nothing to ask."""
    require_text(question, "the question")
    text = "".join(ch for ch in question if unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\n\t")
    text = " ".join(text.split())
    if not text:
        raise InputRejected("the question is empty")
    if len(text) > max_chars:
        raise InputRejected(f"the question is {len(text):,} characters long; the limit is {max_chars:,}")
    if not any(ch.isalnum() for ch in text):
        raise InputRejected("the question has no letters or digits to search for")
    return text


class Pipeline:
    """Opens the store and models once; every surface (CLI, app, API) goes through one of these."""

    def __init__(self, settings: Settings | None = None, *, read_only: bool = False) -> None:
        """`read_only`: this pipeline only answers (the CLI's `ask` and `retrieve`), so an embedded store is
        opened through Chroma's engine without the chromadb package (`vectorstore.chroma._EngineClient`:
        ~1 s less of a cold start), and `ingest` is refused."""
        self.settings = settings or Settings.from_env()
        self.settings.check_data_dir(write=False)
        self.read_only = read_only
        self._searcher = None
        self._checked = 0.0

    # ---- ingestion
    def ingest(self, paths: Sequence[Path] | None = None, *, rebuild: bool = False,
               progress: Callable[[int, int], None] | None = None):
        from rag.ingestion.incremental import ingest

        if self.read_only:
            raise RuntimeError("this Pipeline was opened read_only: make another one to ingest")
        report = ingest(paths, self.settings, rebuild=rebuild, progress=progress)
        self._searcher = None  # the next query sees the new index
        return report

    def sources(self) -> list[dict[str, Any]]:
        docs = Manifest.read(self.settings.data_dir).documents.values()
        return [{"source": d["source"], "title": d["title"], "chunks": d["chunks"], "publisher": d.get("publisher"),
                 "author": d.get("author"), "date": d.get("date"), "duplicates": d.get("duplicates", [])}
                for d in sorted(docs, key=lambda d: d["source"])]

    def document_text(self, source: str) -> str:
        """The cleaned text of an indexed document: what every citation's start/end index into."""
        for doc in Manifest.read(self.settings.data_dir).documents.values():
            if doc["source"] == source:
                return self._cleaned_text(doc)
        raise InputRejected(f"{source!r} is not an indexed document")

    def status(self) -> dict[str, Any]:
        """What the index holds: documents, chunks, near-duplicate groups, when it was last written."""
        manifest = Manifest.read(self.settings.data_dir)
        docs = manifest.documents.values()
        groups = {frozenset([d["source"], *d.get("duplicates", [])]) for d in docs if d.get("duplicates")}
        return {"documents": len(manifest.documents), "chunks": sum(d["chunks"] for d in docs),
                "duplicate_groups": len(groups), "indexed_at": manifest.indexed_at,
                "corpus_dir": str(self.settings.corpus_dir)}

    def add_upload(self, filename: str, data: bytes) -> tuple[Path, int]:
        """Save an uploaded article into the uploads folder and index it. Returns (its path, its own
        chunk count)."""
        from rag.ingestion.uploads import save_upload

        path, _ = save_upload(filename, data, self.settings)
        self.ingest([path])
        return path, next((d["chunks"] for d in self.sources() if d["source"] == str(path)), 0)

    def remove(self, source: str) -> int:
        """Take a document out of the index (as `sources()` names it); an upload's file is deleted too,
        a corpus file stays (and comes back with the next full ingest). Returns the chunks removed."""
        from rag.ingestion.incremental import remove
        from rag.ingestion.uploads import is_upload

        removed = remove([source], self.settings)
        self._searcher = None
        if is_upload(source, self.settings):
            Path(source).unlink(missing_ok=True)
        return removed

    def is_empty(self) -> bool:
        return not Manifest.search_view(self.settings.data_dir).documents

    # ---- retrieval
    @property
    def searcher(self):
        """The hybrid search over the index currently published (`rag.retrieval.search.HybridSearch`)."""
        if self._searcher is None:
            self._searcher, self._checked = self._open_searcher(), time.monotonic()
        elif time.monotonic() - self._checked > REFRESH_SECONDS:
            self._refresh()
        return self._searcher

    @property
    def is_loaded(self) -> bool:
        """Whether the store is open and the model loaded (after warm_up or a first query)."""
        return self._searcher is not None

    def _refresh(self) -> None:
        """Pick up an index another process published (a shared data dir, or replicas sharing one
        Chroma server): reopen when the store's published digest is not the one we serve."""
        self._checked = time.monotonic()
        try:
            published, generation = self._searcher.store.publication()
        except RagError:
            return  # the query itself will report the store's state
        if published is not None and (published, generation) != (self._searcher.keyword_digest,
                                                                   self._searcher.generation):
            self._searcher = self._open_searcher()

    def as_retriever(self, k: int | None = None, filters: Filters | Mapping[str, Any] | None = None):
        """The search as a LlamaIndex `BaseRetriever` (imports LlamaIndex; the pipeline itself does not)."""
        from rag.retrieval.retriever import HybridRetriever

        return HybridRetriever(self, _check_k(k), Filters.parse(filters))

    def _keyword_index(self, store, published: str | None, local):
        """The local keyword index (`local`, as loaded), rebuilt from the collection when the store has
        published a chunk set this data dir lacks, but only once the collection holds exactly that set
        (never from the middle of another process's ingest)."""
        from rag.retrieval.keyword import KeywordIndex, ids_digest

        directory = self.settings.data_dir / "keyword"
        if published is None or (local is not None and local.current and local.digest == published):
            return local
        if ids_digest(store.all_ids()) != published:
            return local  # an ingest is under way elsewhere: serve the last whole index we have
        # (or the local one was saved by an older version, without its document part)
        rebuilt = KeywordIndex.from_records(*store.all_chunks(KeywordIndex.RECORD_FIELDS))
        rebuilt.save(directory)
        return rebuilt

    def _open_searcher(self):
        from concurrent.futures import ThreadPoolExecutor

        from rag.embedding.models import batched, embedding_dimension, get_embedder
        from rag.retrieval.keyword import KeywordIndex, import_bm25s
        from rag.retrieval.search import HybridSearch
        from vectorstore import open_store

        import_bm25s()  # before the loader threads start: see there
        model = self.settings.embed_model
        # The model and the keyword index load while Chroma is imported and opened: together they are
        # most of a cold `rag ask`. One after the other in one thread: Chroma's import is the longest
        # part and holds the GIL, and a third thread competing for it slowed it more than running the
        # two loads side by side gained (at 100k chunks, 1.04 s against 1.08-1.10 s, five runs each).
        with ThreadPoolExecutor(1, thread_name_prefix="load") as loader:
            embedder = loader.submit(get_embedder, self.settings)
            local_keyword = loader.submit(KeywordIndex.load, self.settings.data_dir / "keyword")
            store = open_store(self.settings, model, embedding_dimension(model), create=False, reader=self.read_only)
            view = Manifest.search_view(self.settings.data_dir)
            published, generation = store.publication()  # read first: a later publish makes the next refresh reopen
            keyword = self._keyword_index(store, published, local_keyword.result())
            return HybridSearch(store, keyword, batched(embedder.result()), view.duplicates,
                                k=self.settings.k, dates=view.dates, generation=generation)

    def warm_up(self, sentences: int = 0) -> None:
        """Open the store and load the embedding model now rather than on the first question. With
        `sentences`, also embed up to that many sentences of chunks stored without their sentence
        vectors (an index from before ingest stored them), so a server's first answers are as fast as
        later ones; an index ingested by this version has them all and embeds nothing here."""
        from rag.ingestion import sentence_store

        retriever = self.searcher
        retriever.embedder.get_query_embedding("warm up")
        lacking = retriever.store.ids_without(sentence_store.FORMAT_KEY, sentence_store.FORMAT) if sentences else []
        if lacking:
            from rag.answer.citations import candidate_sentences
            from rag.answer.extractive import sentence_vectors
            from rag.retrieval.search import Passage

            records = retriever.store.get(lacking[: sentences])
            pool = [s.text for text, meta in records.values()
                    for s in candidate_sentences(Passage("", text, meta.get("source", ""), "", 0, len(text), 0.0))]
            sentence_vectors(retriever.embedder, list(dict.fromkeys(pool))[:sentences])

    def retrieve(self, query: str, k: int | None = None, *, filters: Filters | Mapping[str, Any] | None = None,
                 history: Sequence[str] | None = None):
        """The k best passages for a query (rewritten with `history` when it is a follow-up)."""
        from rag.answer.chat import condense

        query = condense(clean_question(query, self.settings.max_question_chars), _clean_history(history))
        return self.searcher.search(query, _check_k(k) or self.settings.k, Filters.parse(filters))

    # ---- answering
    def ask(self, question: str, history: Sequence[str] | None = None, *, k: int | None = None,
            mode: str | None = None, on_token: Callable[[str], None] | None = None,
            filters: Filters | Mapping[str, Any] | None = None):
        from rag.answer.citations import Answer
        from rag.answer.overview import read_request
        from rag.answer.chat import condense, condense_with_llm, is_follow_up

        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        mode = self.settings.resolved_mode(mode)
        history = _clean_history(history)
        filters = Filters.parse(filters)
        request = read_request(question)  # "Summarize the articles", "Give me a timeline of …"
        if request and request.topic and not is_follow_up(request.topic):
            query = request.topic
        elif mode == "llm":
            query = condense_with_llm(question, history, self.settings)
        else:
            query = condense(question, history)
        retriever = self.searcher  # one index for the whole request, even if a newer one is published meanwhile
        vector = retriever.embedder.get_query_embedding(query)  # once, for retrieval and the answerer
        passages = retriever.search(query, _check_k(k) or self.settings.k, filters, query_vector=vector)
        retrieved = time.perf_counter()
        answer = Answer(question=question, answer="", abstained=True, mode=mode, passages=passages, query=query)
        suspicious = _instruction_warnings(passages)
        if suspicious:
            on_token = None  # stream nothing that has not been validated against the planted instructions
        if request:
            self._answer_request(answer, request, retriever, vector if request.topic else None, filters)
        elif mode == "llm":
            self._answer_with_llm(answer, on_token, retriever.embedder)
        if answer.mode == "extractive" and not request:
            self._answer_extractively(answer, retriever.embedder, _asked_vector(question, query, vector, retriever))
        answer.warnings = [*suspicious, *(answer.warnings or [])]
        if not answer.abstained:
            _note_conflicts(answer)
        done = time.perf_counter()
        answer.timings_ms = {"retrieve": _ms(retrieved - started), "answer": _ms(done - retrieved),
                             "total": _ms(done - started)}
        return answer

    def _answer_request(self, answer, request, retriever, topic_vector, filters: Filters) -> None:
        """A request that is not a question (an overview, a timeline, the list of articles), answered from
        the articles themselves in every mode: deterministic, and every sentence cited."""
        from rag.answer.extractive import sentence_vectors
        from rag.answer.overview import respond

        records = Manifest.read(self.settings.data_dir).documents.values()
        documents = lambda: self._documents(records, filters)  # noqa: E731 - texts read only when needed
        text, citations = respond(request, documents, answer.passages,
                                  lambda texts: sentence_vectors(retriever.embedder, texts), topic_vector,
                                  {d["source"]: d.get("date") for d in records})
        answer.kind, answer.mode = request.kind, "extractive"
        if citations:
            answer.answer, answer.citations, answer.abstained = text, citations, False
        else:
            answer.answer = "The articles don't say. (Nothing retrieved is about that.)"

    def _documents(self, records, filters: Filters):
        """The indexed articles (cleaned text, title, date) of manifest records, in source order, within the
        filters."""
        from rag.answer.overview import Document

        docs = sorted(records, key=lambda d: d["source"])
        return [Document(d["source"], d["title"], self._cleaned_text(d), d.get("date"), tuple(d.get("duplicates", [])))
                for d in docs if not filters or filters.allows(d["source"], d.get("date"))]

    def _cleaned_text(self, record: Mapping[str, Any]) -> str:
        """The cleaned text ingest kept for a manifest record; StoreDamaged when it is gone or unreadable."""
        from rag.errors import StoreDamaged

        path = self.settings.data_dir / "texts" / f"{record['content_hash']}.txt"
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreDamaged(f"the cleaned text of {record['source']} cannot be read: {type(exc).__name__}") from None

    def _answer_with_llm(self, answer, on_token, embedder) -> None:
        from rag.answer.llm import answer_llm

        try:
            result = answer_llm(answer.query, answer.passages, self.settings, on_token, embedder)
            answer.answer, answer.citations, answer.abstained = result.answer, result.citations, result.abstained
            answer.warnings, answer.support = result.warnings, [s.to_dict() for s in result.support]
        except LLMUnavailable as exc:
            answer.mode = "extractive"
            answer.notice = f"LLM answer not used: {exc}. Showing the extractive answer instead."

    def _answer_extractively(self, answer, embedder, query_vector) -> None:
        from rag.answer.extractive import answer_extractive

        result = answer_extractive(answer.query, answer.passages, embedder,
                                   self.settings.max_answer_words, query_vector=query_vector)
        answer.answer, answer.citations, answer.abstained = result.answer, result.citations, result.abstained


def _asked_vector(question: str, query: str, query_vector, retriever):
    """What the answer's sentences are compared with: for a follow-up, the question as asked and as
    rewritten count alike ("And what did Trump call them?" asks about Trump's words; the rewrite only
    says what "them" is). A question that stands alone is its own query."""
    if query == question:
        return query_vector
    import numpy as np

    asked = np.asarray(retriever.embedder.get_query_embedding(question), dtype=np.float32)
    rewritten = np.asarray(query_vector, dtype=np.float32)
    return asked / (np.linalg.norm(asked) + 1e-9) + rewritten / (np.linalg.norm(rewritten) + 1e-9)


def _note_conflicts(answer) -> None:
    """Cited sentences from different articles that give different figures for the same thing: listed in
    `answer.conflicts`, and said in the answer, citing both."""
    from rag.answer.conflicts import find_conflicts

    found = find_conflicts([(c.id, c.source, c.quote) for c in answer.citations])
    answer.conflicts = [c.to_dict() for c in found]
    for c in found:
        a, b = c.citations
        answer.answer += f" The sources differ on {c.about}: “{c.figures[0]}” [{a}] against “{c.figures[1]}” [{b}]"


def _instruction_warnings(passages) -> list[str]:
    from rag.answer.citations import instructions_in

    return [f"passage {i} ({p.source}) contains text addressed to an AI model; it was treated as data, "
            "never as instructions" for i, p in enumerate(passages, start=1) if instructions_in(p)]


def _clean_history(history: Sequence[str] | None) -> list[str]:
    if history is not None and (isinstance(history, str) or not isinstance(history, Sequence)):
        raise InputRejected("history must be a list of earlier questions")
    return [require_text(h, "an earlier question in history") for h in (history or [])
            if isinstance(h, str) and h.strip()]


def _check_k(k: int | None) -> int | None:
    if k is not None and not 1 <= k <= 50:
        raise InputRejected(f"k must be between 1 and 50, got {k}")
    return k


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def require_index(pipeline: Pipeline) -> None:
    if pipeline.is_empty():
        raise StoreUnavailable(f"the index in {pipeline.settings.data_dir} is empty: run `rag ingest` first")
