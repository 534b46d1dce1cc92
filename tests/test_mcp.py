"""`rag mcp`: a real MCP client session (the official SDK) talking to the server over stdio."""

import asyncio
import json
import os
import sys

from conftest import ROOT


def call(data_dir, steps):
    """Run `rag mcp` as a subprocess, open a client session, and apply `steps(session)`."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "mcp"], cwd=str(ROOT),
                                   env={**os.environ, "RAG_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"})

    async def session():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            return await steps(client)

    return asyncio.run(asyncio.wait_for(session(), timeout=120))


def payload(result):
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)


def test_mcp_lists_and_calls_search_and_ask(seeded):
    async def steps(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        found = await client.call_tool("search", {"query": "Rosneft Lukoil sanctions", "k": 3,
                                                  "source": ["003_0ea4331d0d193fdf.txt"]})
        answered = await client.call_tool("ask", {"question": "Why was the Budapest summit cancelled?"})
        refused = await client.call_tool("ask", {"question": "   "})
        return tools, found, answered, refused

    tools, found, answered, refused = call(seeded.settings.data_dir, steps)
    assert {"search", "ask"} <= set(tools) and "query" in tools["search"].input_schema["properties"]
    passages = payload(found)
    passages = passages.get("result", passages)
    assert len(passages) == 3 and {p["source"] for p in passages} == {"seeds/003_0ea4331d0d193fdf.txt"}
    answer = payload(answered)
    assert "Budapest" in answer["answer"] and answer["citations"][0]["quote"] in answer["answer"]
    assert refused.is_error and "the question is empty" in refused.content[0].text

