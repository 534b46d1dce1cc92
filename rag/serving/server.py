"""`rag serve`: the REST API. FastAPI over the same `Pipeline` and the same JSON as the CLI.

    POST /retrieve   {"query", "k", "filters", "history"}            -> [Passage]
    POST /ask        {"question", "history", "k", "mode", "filters"}  -> Answer (as `rag ask --json`)
    POST /ask/stream  same body, server-sent events: token*, then answer (or error)
    POST /ingest     {"documents": [{"filename", "text"}], "rebuild"} -> IngestReport  (needs RAG_API_TOKEN)
    GET  /sources, GET /healthz, GET /openapi.json, GET /docs

Reads run concurrently in the worker pool; one ingest at a time (a second gets 409); readers keep
the last published index until an ingest has finished (see rag.ingestion.incremental).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from typing import Any, AsyncIterator, Callable, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.config import Settings
from rag.errors import (
    ConfigError,
    InputRejected,
    LLMUnavailable,
    RagError,
    StoreBusy,
    StoreMismatch,
    StoreUnavailable,
)
from rag.pipeline import Pipeline
from rag.text import require_text

WARM_SENTENCES = 50_000  # corpus sentences embedded at start-up for the extractive answerer (~3 min at most)
MAX_READ_BODY = 64_000  # bytes: a question, its history and filters
SHUTDOWN_SECONDS = 5  # on SIGTERM, open requests and streams get this long before the server stops
MAX_STREAMS = 32  # answers being streamed at once, each on its own thread; more get an error event at once
_STREAM_SLOTS = threading.BoundedSemaphore(MAX_STREAMS)
STATUS = {InputRejected: 422, ConfigError: 422, StoreBusy: 409, StoreMismatch: 409, StoreUnavailable: 503,
          LLMUnavailable: 502}


class RetrieveRequest(BaseModel):
    query: str
    k: int | None = Field(None, ge=1, le=50)
    filters: dict[str, Any] | None = None
    history: list[str] = Field(default_factory=list, max_length=20)


class AskRequest(BaseModel):
    question: str
    history: list[str] = Field(default_factory=list, max_length=20)
    k: int | None = Field(None, ge=1, le=50)
    mode: Literal["auto", "extractive", "llm"] | None = None
    filters: dict[str, Any] | None = None


class Document(BaseModel):
    filename: str = Field(description="used for its extension only (.txt, .md, .html); the file is saved "
                                      "under a name derived from its content")
    text: str


class IngestRequest(BaseModel):
    documents: list[Document] = Field(default_factory=list, description="articles to add; none: re-index the corpus")
    rebuild: bool = False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    pipeline = Pipeline(settings)
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(title="newsrag", version="1", description="Cited question answering over a news corpus.")
    app.state.pipeline = pipeline
    reader, writer = _auth(settings, write=False), _auth(settings, write=True)

    # Inside the time limit below (middleware added later wraps what was added before), so FastAPI's body
    # parsing calls its receive directly and lets its 413 through.
    app.add_middleware(BodyLimit, limit_for=lambda path: 2 * settings.max_file_bytes if path == "/ingest"
                       else MAX_READ_BODY)

    app.add_middleware(TimeLimit, seconds=settings.request_timeout)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        # FastAPI's own errors (unknown path, wrong method, a body it cannot parse) in our one error shape.
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RagError)
    async def rag_error(_: Request, exc: RagError):
        status = getattr(exc, "status", None) or next((c for kind, c in STATUS.items() if isinstance(exc, kind)), 500)
        return _error(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "the body is not valid JSON (or not UTF-8)")
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        return _error(422, problems[:2000])

    # The two read paths return their JSON as it is, not through FastAPI's response validation and encoder
    # (a `-> list[dict]` return type): 489–497 /retrieve/s against 438–467 (`rag bench`, 32 clients).
    @app.post("/retrieve", dependencies=[Depends(reader)], response_model=list[dict[str, Any]])
    def retrieve(body: RetrieveRequest) -> JSONResponse:
        return JSONResponse([p.to_dict() for p in pipeline.retrieve(body.query, body.k, filters=body.filters,
                                                                     history=body.history)])

    @app.post("/ask", dependencies=[Depends(reader)], response_model=dict[str, Any])
    def ask(body: AskRequest) -> JSONResponse:
        return JSONResponse(pipeline.ask(body.question, body.history, k=body.k, mode=body.mode,
                                         filters=body.filters).to_dict())

    @app.post("/ask/stream", dependencies=[Depends(reader)])
    async def ask_stream(body: AskRequest) -> StreamingResponse:
        return StreamingResponse(_stream_answer(pipeline, body, settings.request_timeout),
                                 media_type="text/event-stream")

    @app.post("/ingest", dependencies=[Depends(writer)])
    def ingest(body: IngestRequest) -> dict[str, Any]:
        if not body.documents:
            return pipeline.ingest(rebuild=body.rebuild).to_dict()
        from rag.ingestion.uploads import save_upload

        saved = [save_upload(d.filename, require_text(d.text, f"the text of {d.filename!r}").encode("utf-8"),
                             settings)[0] for d in body.documents]
        return pipeline.ingest(saved, rebuild=body.rebuild).to_dict()

    @app.get("/sources", dependencies=[Depends(reader)])
    def sources() -> list[dict[str, Any]]:
        return pipeline.sources()

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        health = _health(pipeline)
        return JSONResponse(health, status_code=200 if health["status"] == "ok" else 503)

    return app


def _health(pipeline: Pipeline) -> dict[str, Any]:
    settings = pipeline.settings
    store: dict[str, Any] = {"kind": "chroma-server" if settings.chroma_host else "embedded",
                             "documents": pipeline.status()["documents"]}
    try:
        store["chunks"] = pipeline.searcher.store.count()
        store["ok"] = True
    except RagError as exc:
        store.update(ok=False, error=str(exc))
    model = {"name": settings.embed_model, "loaded": pipeline.is_loaded}
    return {"status": "ok" if store["ok"] else "degraded", "store": store, "model": model,
            "mode": settings.resolved_mode()}


async def _stream_answer(pipeline: Pipeline, body: AskRequest, time_limit: float) -> AsyncIterator[str]:
    """Server-sent events: `token` as the LLM writes, then `answer` (the full JSON) or `error`.

    The answer is worked out on its own thread and its events are awaited here, so an open stream holds
    no worker-pool thread. A stream always ends: any failure of the worker is an `error` event, and so is
    the request time limit."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def put(kind: str, data: Any) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, (kind, data))
        except RuntimeError:  # the server is shutting down: nobody is listening any more
            pass

    if not _STREAM_SLOTS.acquire(blocking=False):
        yield _event("error", {"error": f"{MAX_STREAMS} answers are being streamed already; try again shortly"})
        return

    def work() -> None:
        try:
            answer = pipeline.ask(body.question, body.history, k=body.k, mode=body.mode, filters=body.filters,
                                  on_token=lambda t: put("token", {"text": t}))
            put("answer", answer.to_dict())
        except RagError as exc:
            put("error", {"error": str(exc)})
        except Exception as exc:  # a bug of ours must still end the stream, with a message, not hang it
            logging.getLogger(__name__).exception("answering a streamed question failed")
            put("error", {"error": f"internal error ({type(exc).__name__}); the server log has the details"})
        finally:
            _STREAM_SLOTS.release()

    threading.Thread(target=work, daemon=True, name="ask-stream").start()
    deadline = loop.time() + time_limit
    while True:
        try:
            kind, data = await asyncio.wait_for(events.get(), timeout=max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            kind, data = "error", {"error": f"the answer took longer than {time_limit:g} s (RAG_REQUEST_TIMEOUT)"}
        yield _event(kind, data)
        if kind != "token":
            return


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class TimeLimit:
    """504 for a request whose response has not started within `seconds` (a stream, once started, runs
    under its own limit), and `nosniff` on every response: they are data, no browser may sniff article
    or model text in them into HTML. Plain ASGI: Starlette's `@app.middleware("http")` gives every
    request a task group and a body stream (without it: 505–520 /retrieve/s against 489–497, `rag bench`)."""

    def __init__(self, app: Any, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = asyncio.Event()

        async def marked(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    message["headers"] = [*headers, (b"x-content-type-options", b"nosniff")]
                started.set()
            await send(message)

        handling = asyncio.ensure_future(self.app(scope, receive, marked))
        responding = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({handling, responding}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            responding.cancel()
        if not started.is_set() and not handling.done():
            handling.cancel()
            response = _error(504, f"the request took longer than {self.seconds:g} s (RAG_REQUEST_TIMEOUT)")
            return await response(scope, receive, marked)
        await handling


class BodyLimit:
    """Refuse a request body over the limit, counted as it arrives: a declared Content-Length up front, a
    chunked body (no length) cut off at the limit rather than read whole. Written here rather than using
    FastAPI's `max_body_size` because Starlette's limiter answers a declared length in text/plain, and
    every error of this API is `{"error": …}`."""

    def __init__(self, app: Any, limit_for: Callable[[str], int]):
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            response = _error(413, f"request body is {int(length):,} bytes; the limit here is {limit:,}")
            return await response(scope, receive, send)
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # FastAPI lets an HTTPException out of its body parsing as it is
                    raise HTTPException(413, f"request body is over the limit here of {limit:,} bytes")
            return message

        await self.app(scope, counted, send)


def _auth(settings: Settings, *, write: bool):
    """A dependency checking `Authorization: Bearer <token>`: always for writes, for reads when configured.
    Any header content gets 401, never 500: tokens are compared as UTF-8 bytes, in constant time.
    `async` though it awaits nothing: FastAPI runs a plain `def` dependency in its thread pool, a thread
    hop on every request for a few comparisons."""

    async def check(authorization: str | None = Header(default=None)) -> None:
        accepted = [settings.api_token] if write else [settings.api_read_token, settings.api_token]
        if write and not settings.api_token:
            raise _HTTPError(403, "ingest over HTTP is disabled: start the server with RAG_API_TOKEN set")
        if not write and not settings.api_read_token:
            return
        scheme, _, given = (authorization or "").strip().partition(" ")
        given_bytes = given.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() != "bearer" or not given_bytes or not any(
                t and secrets.compare_digest(given_bytes, t.encode("utf-8")) for t in accepted):
            raise _HTTPError(401, "missing or wrong token: send Authorization: Bearer <token>")

    return check


class _HTTPError(InputRejected):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"X-Content-Type-Options": "nosniff"})


def app_from_env() -> FastAPI:
    """The app as each worker process builds it (settings from the environment), model loaded."""
    from rag.redact import install

    import os
    import sys
    import time

    settings = Settings.from_env()
    install(settings)  # each worker process: log level, secrets redacted
    app = create_app(settings)
    started = time.perf_counter()
    try:
        app.state.pipeline.warm_up(sentences=WARM_SENTENCES)  # the model and sentence vectors, before requests
        state = f"model loaded and index open in {time.perf_counter() - started:.1f} s"
    except RagError as exc:
        state = f"not ready to answer: {exc}"  # /healthz reports it too; requests get the error
    print(f"rag serve: worker {os.getpid()}: {state}", file=sys.stderr, flush=True)
    return app


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Run the API. With several workers each is a process with its own model: Python threads share one
    core for the model's Python parts, processes use them all. Settings reach workers through the env."""
    import os
    import sys

    os.environ["RAG_DATA_DIR"] = str(settings.data_dir)
    os.environ["RAG_CORPUS_DIR"] = str(settings.corpus_dir)
    # Concurrency comes from requests (threads, batched queries, worker processes), not from each model
    # call spreading over every core: one math thread per process measured ~35 % more throughput here.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"rag serve: {workers} worker(s) loading the model and opening the index in {settings.data_dir}…",
          file=sys.stderr, flush=True)
    import uvicorn

    # uvicorn's own start-up lines (its "Uvicorn running on http://…" once it listens), no access log
    options = {"host": host, "port": port, "log_level": "info", "access_log": False,
               "timeout_graceful_shutdown": SHUTDOWN_SECONDS}
    if workers == 1:
        uvicorn.run(app_from_env(), **options)
    else:
        uvicorn.run("rag.serving.server:app_from_env", factory=True, workers=workers, **options)
