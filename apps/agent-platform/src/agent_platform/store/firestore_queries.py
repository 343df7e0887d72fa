"""Every query the Firestore store issues, as data, and the composite index each one needs.

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


@dataclass(frozen=True, slots=True)
class IndexField:
    field_path: str
    order: Direction


@dataclass(frozen=True, slots=True)
class CompositeIndex:
    """An index as `firestore.indexes.json` declares it."""

    collection: str
    query_scope: str
    fields: tuple[IndexField, ...]


@dataclass(frozen=True, slots=True)
class IndexNeed:
    """What a query needs: its equality fields in any order, then its ordered fields."""

    collection: str
    query_scope: str
    equal: frozenset[str]
    ordered: tuple[IndexField, ...]

    def served_by(self, index: CompositeIndex) -> bool:
        head = len(self.equal)
        return (
            (index.collection, index.query_scope) == (self.collection, self.query_scope)
            and len(index.fields) == head + len(self.ordered)
            and all(f.order is Direction.ASCENDING for f in index.fields[:head])
            and {f.field_path for f in index.fields[:head]} == self.equal
            and index.fields[head:] == self.ordered
        )

    def as_json(self) -> dict[str, object]:
        """The entry to add to `firestore.indexes.json`."""
        fields = [IndexField(name, Direction.ASCENDING) for name in sorted(self.equal)]
        return {
            "collectionGroup": self.collection,
            "queryScope": self.query_scope,
            "fields": [
                {"fieldPath": f.field_path, "order": f.order.value}
                for f in (*fields, *self.ordered)
            ],
        }


def required_index(spec: QuerySpec) -> IndexNeed | None:
    """The composite index a query needs, None when Firestore's single-field indexes serve it.

    Equality filters alone are merged from single-field indexes; a range or an order on one
    field with no equality filter uses that field's own index. Everything else needs the
    equality fields first, then the ordered fields.
    """
    ordered = list(spec.order)
    if spec.range is not None and (not ordered or ordered[0][0] != spec.range):
        ordered.insert(0, (spec.range, Direction.ASCENDING))
    if not ordered or (not spec.equal and len(ordered) == 1):
        return None
    scope = "COLLECTION_GROUP" if spec.collection_group else "COLLECTION"
    return IndexNeed(
        spec.collection,
        scope,
        frozenset(spec.equal),
        tuple(IndexField(name, direction) for name, direction in ordered),
    )


def parse_indexes(document: dict[str, object]) -> list[CompositeIndex]:
    """The composite indexes of a `firestore.indexes.json` document."""
    indexes = document.get("indexes", [])
    if not isinstance(indexes, list):
        raise ValueError("`indexes` in firestore.indexes.json must be a list")
    return [
        CompositeIndex(
            collection=entry["collectionGroup"],
            query_scope=entry.get("queryScope", "COLLECTION"),
            fields=tuple(
                IndexField(f["fieldPath"], Direction(f["order"])) for f in entry["fields"]
            ),
        )
        for entry in indexes
    ]


def missing_indexes(
    specs: dict[str, QuerySpec], indexes: list[CompositeIndex]
) -> dict[str, IndexNeed]:
    """The queries, by name, that no declared index serves."""
    missing = {}
    for name, spec in specs.items():
        need = required_index(spec)
        if need is not None and not any(need.served_by(index) for index in indexes):
            missing[name] = need
    return missing
