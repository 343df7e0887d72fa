"""A run's token holds as both stores keep them: a map of hold id to its tokens, holder, end.

Each store reads the map, applies these pure functions and writes the result back in one
transaction, so the budget arithmetic is the same on SQLite and Firestore.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agent_platform.domain import TokenHold

Holds = Mapping[str, Mapping[str, Any]]


def entry(hold: TokenHold, tokens: int) -> dict[str, Any]:
    """How a hold of `tokens` is stored; its end as ISO text, ordered and exact in both stores."""
    return {"tokens": tokens, "holder": hold.holder, "until": hold.until.isoformat()}


def stale(holds: Holds, *, holder: str | None, now: datetime) -> list[str]:
    """Ids of the holds that ran out by `now` or belong to `holder`: lost calls."""
    return sorted(
        hold_id
        for hold_id, held in holds.items()
        if held.get("holder") == holder or datetime.fromisoformat(held["until"]) <= now
    )


def tokens(holds: Holds, ids: list[str] | None = None) -> int:
    """The tokens the holds (or those of `ids`) set aside."""
    return sum(int(holds[i]["tokens"]) for i in (holds if ids is None else ids))
