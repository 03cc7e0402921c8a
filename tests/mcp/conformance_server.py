"""An MCP server (official SDK `MCPServer`) with every fixture the MCP conformance suite's
server scenarios call (npm @modelcontextprotocol/conformance 0.1.16), served behind the guard
with `rs_guard.mcp.sdk.guard_app`.

The fixtures follow the scenario descriptions the suite prints (`conformance list --server`,
and each scenario's "Server Implementation Requirements"); written for this suite, not copied
from the SDKs' own "everything" servers. Some requirements need the SDK's low-level server
(logging/setLevel, resources/subscribe and unsubscribe, a raw JSON Schema 2020-12 input schema):
those reach `MCPServer`'s low-level server and tool manager, which only a test may do.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage
from starlette.applications import Starlette

from rs_guard import Requirement
from rs_guard.mcp import ToolRequirements
from rs_guard.mcp.sdk import guard_app

# A 1x1 PNG and a 1-sample WAV, built here rather than stored.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(
    b"RIFF"
    + (38).to_bytes(4, "little")
    + b"WAVEfmt "
    + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little")
    + (8000).to_bytes(4, "little")
    + (16000).to_bytes(4, "little")
    + (2).to_bytes(2, "little")
    + (16).to_bytes(2, "little")
    + b"data"
    + (2).to_bytes(4, "little")
    + b"\x00\x00"
).decode()
SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema"


class MemoryEventStore(EventStore):
    """Events kept in memory, so a closed SSE stream can be resumed (SEP-1699 polling)."""

    def __init__(self) -> None:
        self._events: list[tuple[EventId, StreamId, JSONRPCMessage | None]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        found = next((s for e, s, _ in self._events if e == last_event_id), None)
        if found is None:
            return None
        after = False
        for event_id, stream_id, message in self._events:
            if event_id == last_event_id:
                after = True
                continue
            if after and stream_id == found and message is not None:
                await send_callback(EventMessage(message, event_id))
        return found


def build_mcp() -> MCPServer:
    mcp: MCPServer = MCPServer("rs_guard-conformance", log_level="WARNING")

    @mcp.tool(description="Returns simple text")
    async def test_simple_text() -> str:
        return "This is a simple text response for testing."

    @mcp.tool(description="Returns an image")
    async def test_image_content() -> list[Any]:
        return [types.ImageContent(type="image", data=PNG, mime_type="image/png")]

    @mcp.tool(description="Returns audio")
    async def test_audio_content() -> list[Any]:
        return [types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")]

    def embedded(uri: str, mime: str, text: str) -> types.EmbeddedResource:
        contents = types.TextResourceContents(uri=uri, mime_type=mime, text=text)
        return types.EmbeddedResource(type="resource", resource=contents)

    @mcp.tool(description="Returns an embedded resource")
    async def test_embedded_resource() -> list[Any]:
        return [
            embedded(
                "test://embedded-resource", "text/plain", "This is an embedded resource content."
            )
        ]

    @mcp.tool(description="Returns text, an image and a resource")
    async def test_multiple_content_types() -> list[Any]:
        return [
            types.TextContent(type="text", text="Multiple content types test:"),
            types.ImageContent(type="image", data=PNG, mime_type="image/png"),
            embedded(
                "test://mixed-content-resource",
                "application/json",
                json.dumps({"test": "data", "value": 123}),
            ),
        ]

    @mcp.tool(description="Logs three messages while it runs")
    async def test_tool_with_logging(ctx: Context) -> str:
        await ctx.log("info", "Tool execution started")
        await asyncio.sleep(0.05)
        await ctx.log("info", "Tool processing data")
        await asyncio.sleep(0.05)
        await ctx.log("info", "Tool execution completed")
        return "Tool with logging executed"

    @mcp.tool(description="Always fails")
    async def test_error_handling() -> str:
        raise RuntimeError("This tool intentionally returns an error for testing")

    @mcp.tool(description="Reports progress 0, 50, 100 of 100")
    async def test_tool_with_progress(ctx: Context) -> str:
        for done in (0, 50, 100):
            await ctx.report_progress(done, 100)
            if done < 100:
                await asyncio.sleep(0.05)
        return "Progress tool executed"

    @mcp.tool(description="Asks the client's LLM")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        message = types.SamplingMessage(
            role="user", content=types.TextContent(type="text", text=prompt)
        )
        result = await ctx.session.create_message(
            messages=[message], max_tokens=100, related_request_id=ctx.request_id
        )
        content = result.content
        text = content.text if isinstance(content, types.TextContent) else str(content)
        return f"LLM response: {text}"

    async def elicit(ctx: Context, message: str, schema: dict[str, Any]) -> types.ElicitResult:
        return await ctx.session.elicit_form(
            message, requested_schema=schema, related_request_id=ctx.request_id
        )

    @mcp.tool(description="Asks the user for a name and an e-mail address")
    async def test_elicitation(message: str, ctx: Context) -> str:
        answer = await elicit(
            ctx,
            message,
            {
                "type": "object",
                "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"},
                },
                "required": ["username", "email"],
            },
        )
        return f"User response: action={answer.action}, content={json.dumps(answer.content)}"

    @mcp.tool(description="Elicitation with a default for each primitive type")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        answer = await elicit(
            ctx,
            "Please review your details",
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "default": "John Doe"},
                    "age": {"type": "integer", "default": 30},
                    "score": {"type": "number", "default": 95.5},
                    "status": {
                        "type": "string",
                        "enum": ["active", "inactive", "pending"],
                        "default": "active",
                    },
                    "verified": {"type": "boolean", "default": True},
                },
            },
        )
        return f"Elicitation completed: action={answer.action}, content={answer.content}"

    @mcp.tool(description="Elicitation with every enum variant")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        options = ["option1", "option2", "option3"]
        answer = await elicit(
            ctx,
            "Pick some options",
            {
                "type": "object",
                "properties": {
                    "untitledSingle": {"type": "string", "enum": options},
                    "titledSingle": {
                        "type": "string",
                        "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"},
                        ],
                    },
                    "legacyEnum": {
                        "type": "string",
                        "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"],
                    },
                    "untitledMulti": {
                        "type": "array",
                        "items": {"type": "string", "enum": options},
                    },
                    "titledMulti": {
                        "type": "array",
                        "items": {
                            "anyOf": [
                                {"const": "value1", "title": "First Choice"},
                                {"const": "value2", "title": "Second Choice"},
                                {"const": "value3", "title": "Third Choice"},
                            ]
                        },
                    },
                },
            },
        )
        return f"Elicitation completed: action={answer.action}, content={answer.content}"

    @mcp.tool(description="Closes its SSE stream mid-call; the client resumes (SEP-1699)")
    async def test_reconnection(ctx: Context) -> str:
        await asyncio.sleep(0.05)
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        return "Reconnection test completed"

    @mcp.tool(description="Tool with JSON Schema 2020-12 features")
    async def json_schema_2020_12_tool(
        name: str | None = None, address: dict[str, Any] | None = None
    ) -> str:
        return f"name={name}, address={address}"

    # The scenario checks that `$schema`, `$defs` and `additionalProperties` survive listing:
    # a schema the SDK would not derive from a signature, so it is set on the tool directly.
    tool = mcp._tool_manager.get_tool("json_schema_2020_12_tool")
    assert tool is not None
    tool.parameters = {
        "$schema": SCHEMA_2020_12,
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            }
        },
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False,
    }

    @mcp.resource(
        "test://static-text",
        name="static-text",
        description="A text resource",
        mime_type="text/plain",
    )
    async def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource(
        "test://static-binary", name="static-binary", description="A PNG", mime_type="image/png"
    )
    async def static_binary() -> bytes:
        return base64.b64decode(PNG)

    @mcp.resource(
        "test://watched-resource",
        name="watched-resource",
        description="A resource clients subscribe to",
        mime_type="text/plain",
    )
    async def watched() -> str:
        return "watched"

    @mcp.resource(
        "test://template/{id}/data",
        name="template-data",
        description="Data for an id",
        mime_type="application/json",
    )
    async def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @mcp.prompt(description="A simple prompt")
    async def test_simple_prompt() -> str:
        return "This is a simple prompt for testing."

    @mcp.prompt(description="A prompt with two arguments")
    async def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @mcp.prompt(description="A prompt embedding a resource")
    async def test_prompt_with_embedded_resource(resourceUri: str) -> list[Any]:  # noqa: N803
        return [
            {
                "role": "user",
                "content": embedded(
                    resourceUri, "text/plain", "Embedded resource content for testing."
                ),
            },
            {
                "role": "user",
                "content": {"type": "text", "text": "Please process the embedded resource above."},
            },
        ]

    @mcp.prompt(description="A prompt with an image")
    async def test_prompt_with_image() -> list[Any]:
        return [
            {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
            {
                "role": "user",
                "content": {"type": "text", "text": "Please analyze the image above."},
            },
        ]

    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> types.Completion:
        words = ["paris", "park", "party"]
        return types.Completion(values=[w for w in words if w.startswith(argument.value)])

    lowlevel = mcp._lowlevel_server
    subscriptions: set[str] = set()

    async def set_level(
        ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        return types.EmptyResult()

    async def subscribe(
        ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        subscriptions.add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        subscriptions.discard(str(params.uri))
        return types.EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler(
        "resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe
    )
    return mcp


def build_app(*, resource: str, issuer: str, **guard: Any) -> Starlette:
    """The conformance server behind ResourceGuard, with per-tool requirements the suite's
    token meets (so ToolGuard is on the path of every tools/call)."""
    tools = ToolRequirements()
    tools.add("test_sampling", Requirement(scopes=("conformance:sampling",)))
    tools.add("test_simple_text", Requirement(scopes=("conformance:read",)))
    return guard_app(
        build_mcp(),
        resource=resource,
        tools=tools,
        endpoint=Requirement(scopes=("conformance:read",)),
        http_app={"event_store": MemoryEventStore(), "retry_interval": 100},
        issuer=issuer,
        **guard,
    )
