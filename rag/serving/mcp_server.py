"""`rag mcp`: an MCP server on stdio (the official `mcp` SDK) with two tools over the same contract.

    search(query, k, source, date_from, date_to, history) -> passages, as POST /retrieve returns them
    ask(question, history, k, mode)                        -> the answer, as `rag ask --json` prints it
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from rag.config import Settings
from rag.errors import RagError
from rag.pipeline import Pipeline


def build_server(settings: Settings) -> Any:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    pipeline = Pipeline(settings)
    server = MCPServer("newsrag", instructions="Search a news corpus and answer with citations to exact passages.")

    @server.tool()
    def search(query: str, k: int = 5, source: list[str] | None = None, date_from: str | None = None,
               date_to: str | None = None, history: list[str] | None = None) -> list[dict[str, Any]]:
        """The k most relevant passages from the indexed news articles, each with its source file, title,
        character offsets and score. Filter by source file names and by article date (YYYY-MM-DD)."""
        filters = {"source": source, "date_from": date_from, "date_to": date_to}
        filters = {key: value for key, value in filters.items() if value}
        with _as_tool_error(ToolError):
            return [p.to_dict() for p in pipeline.retrieve(query, k, filters=filters or None, history=history)]

    @server.tool()
    def ask(question: str, history: list[str] | None = None, k: int | None = None,
            mode: str | None = None) -> dict[str, Any]:
        """Answer a question from the articles. Every sentence carries a [n] marker; `citations` give the
        exact quote, file and offsets. Abstains with "The articles don't say." when they do not."""
        with _as_tool_error(ToolError):
            answer = pipeline.ask(question, history, k=k, mode=mode).to_dict()
        answer.pop("passages")  # the citations carry what a caller needs; keeps the reply small
        return answer

    return server


@contextmanager
def _as_tool_error(tool_error: type[Exception]) -> Iterator[None]:
    """Our errors reach the MCP client with their message (the SDK hides other exceptions' text)."""
    try:
        yield
    except RagError as exc:
        raise tool_error(str(exc)) from None


def run(settings: Settings) -> None:
    import anyio

    anyio.run(_serve_stdio, build_server(settings))


async def _serve_stdio(server: Any) -> None:
    # MCPServer.run("stdio") as the SDK writes it, but reading stdin through _WellFormedLines.
    import sys

    import anyio
    from mcp.server.stdio import stdio_server

    stdin = anyio.wrap_file(_WellFormedLines(sys.stdin.buffer))
    async with stdio_server(stdin=stdin) as (read_stream, write_stream):
        lowlevel = server._lowlevel_server
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


class _WellFormedLines:
    """The server's stdin, one JSON-RPC message a line. A lone UTF-16 surrogate ("\\udfff") is valid JSON
    but the SDK's parser rejects the line and answers nothing, so the client waits forever; here it is
    replaced by U+FFFF, a noncharacter that `rag.text.require_text` rejects, and the call gets our error."""

    def __init__(self, raw: Any):
        import io

        self.lines = io.TextIOWrapper(raw, encoding="utf-8", errors="replace")

    def readline(self) -> str:
        import json

        line = self.lines.readline()
        if "\\ud" not in line.lower():
            return line
        try:
            message = json.loads(line)
        except ValueError:
            return line  # the SDK reports what is wrong with it
        return json.dumps(_without_surrogates(message)) + "\n"


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\uffff" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value
