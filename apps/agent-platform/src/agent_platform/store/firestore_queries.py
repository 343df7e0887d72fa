"""Every query the Firestore store issues, as data.

Production Firestore refuses a query without a matching index while the emulator serves it
anyway; keeping the queries here lets a test hold them against `firestore.indexes.json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    ASCENDING = "ASCENDING"
    DESCENDING = "DESCENDING"


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """A query's shape: which fields it filters on and how it orders, not the values."""

    collection: str
    # Fields compared with `==` or `in`, which an index serves alike.
    equal: tuple[str, ...] = ()
    # The field compared with `<`, `<=`, `>` or `>=`; it must also be the first `order`.
    range: str | None = None
    order: tuple[tuple[str, Direction], ...] = ()
    # Queries on a subcollection of every parent need a COLLECTION_GROUP index instead.
    collection_group: bool = False
