"""What makes a Messages API request's input larger than its bytes, so its budget cannot hold.

The gateway bounds a call's input tokens by the request's size in bytes. That holds only while
the input is in the request: an image or document fetched from a URL or the Files API, a
server tool (web search, web fetch, code execution) whose results the API adds to the input,
or MCP servers' tools the API lists itself all bring in tokens that no byte of the request
bounds. The runner sends none of them; a request that does is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

# Content sources that carry their content in the request itself.
_INLINE_SOURCES: Final = frozenset({"base64", "text", "content"})
# Anthropic-defined tools run by the client (the runner's bash and text editor): the API adds
# a fixed definition of a few hundred tokens each, which the settled usage counts.
_CLIENT_TOOL_PREFIXES: Final = ("bash_", "text_editor_")


def unbounded_input(params: Mapping[str, Any]) -> str | None:
    """Why the request's input is not bounded by its size, in words for the caller; else None."""
    if params.get("mcp_servers"):
        return "mcp_servers are not supported by the gateway: their tools are not in the request"
    for tool in _list(params.get("tools")):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in (None, "custom") and not str(kind).startswith(_CLIENT_TOOL_PREFIXES):
            return (
                f"tool type {kind!r} is not supported by the gateway: a server tool adds input "
                "the request does not hold, so the run's budget could not bound it; "
                "use a custom tool"
            )
    for source in _sources([params.get("system"), params.get("messages")]):
        kind = source.get("type")
        if kind not in _INLINE_SOURCES:
            return (
                f"a content source of type {kind!r} is not supported by the gateway: its "
                "content is not in the request, so the run's budget could not bound it; "
                "send it inline (base64 or text)"
            )
    return None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _sources(value: object) -> Iterator[dict[str, Any]]:
    """Every content block's `source`, however deep (tool results hold blocks too)."""
    if isinstance(value, list):
        for item in value:
            yield from _sources(item)
    elif isinstance(value, dict):
        source = value.get("source")
        if isinstance(source, dict):
            yield source
            yield from _sources(source.get("content"))
        yield from _sources(value.get("content"))
