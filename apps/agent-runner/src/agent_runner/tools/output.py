"""What a tool hands back to the model, and the error that turns into an `is_error` result."""

from __future__ import annotations

from dataclasses import dataclass


class ToolError(Exception):
    """The tool call cannot be carried out; the message is shown to the model so it can adapt."""


@dataclass(frozen=True)
class ToolOutput:
    text: str
    is_error: bool = False
    truncated: bool = False


def truncate(text: str, limit: int, total: int | None = None) -> tuple[str, bool]:
    """Keep the first `limit` characters and say how much was dropped out of `total`."""
    total = len(text) if total is None else total
    if total <= limit:
        return text, False
    dropped = total - limit
    return f"{text[:limit]}\n[output truncated: {dropped} more characters not shown]", True
