"""Every query the Firestore store issues has its composite index in firestore.indexes.json.

The emulator serves any query; production Firestore refuses one without a matching index. The
store builds every query from a named spec (QUERIES), so checking the specs checks the queries.
The index file is read with the model the bootstrap creates the indexes from
(`gitops.firestore_indexes`), so the indexes checked here are the ones a project gets.
"""

from __future__ import annotations

import ast
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_platform.store import firestore
from agent_platform.store.firestore import QUERIES
from agent_platform.store.firestore_queries import Direction, QuerySpec
from gitops.firestore_indexes import CompositeIndex, IndexField, TtlField, parse_index_file

INDEXES_FILE = Path(__file__).parents[2] / "apps" / "agent-platform" / "firestore.indexes.json"


@dataclass(frozen=True)
class IndexNeed:
    """What a query needs: its equality fields in any order, then its ordered fields."""

    collection: str
    query_scope: str
    equal: frozenset[str]
    ordered: tuple[IndexField, ...]

    def served_by(self, index: CompositeIndex) -> bool:
        head = len(self.equal)
        return (
            (index.collection_group, index.query_scope) == (self.collection, self.query_scope)
            and len(index.fields) == head + len(self.ordered)
            and all(f.order == Direction.ASCENDING for f in index.fields[:head])
            and {f.path for f in index.fields[:head]} == self.equal
            and index.fields[head:] == self.ordered
        )

    def as_json(self) -> dict[str, object]:
        """The entry to add to `firestore.indexes.json`."""
        fields = [IndexField(name, Direction.ASCENDING) for name in sorted(self.equal)]
        return {
            "collectionGroup": self.collection,
            "queryScope": self.query_scope,
            "fields": [{"fieldPath": f.path, "order": f.order} for f in (*fields, *self.ordered)],
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
        tuple(IndexField(name, direction.value) for name, direction in ordered),
    )


def missing_indexes(
    specs: dict[str, QuerySpec], indexes: tuple[CompositeIndex, ...]
) -> dict[str, IndexNeed]:
    """The queries, by name, that no declared index serves."""
    missing = {}
    for name, spec in specs.items():
        need = required_index(spec)
        if need is not None and not any(need.served_by(index) for index in indexes):
            missing[name] = need
    return missing


@pytest.fixture(scope="module")
def declared() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(INDEXES_FILE.read_text())
    return document


def test_every_query_of_the_store_has_a_composite_index(declared: dict[str, Any]) -> None:
    missing = missing_indexes(dict(QUERIES), parse_index_file(declared).composites)
    assert missing == {}, "add to firestore.indexes.json: " + json.dumps(
        [need.as_json() for need in missing.values()], indent=2
    )


def test_a_query_whose_index_is_gone_is_reported(declared: dict[str, Any]) -> None:
    indexes = parse_index_file(declared).composites
    need = required_index(QUERIES["runs_of_agent_in"])
    assert need is not None
    without = tuple(index for index in indexes if not need.served_by(index))
    assert len(without) == len(indexes) - 1
    assert set(missing_indexes(dict(QUERIES), without)) == {"runs_of_agent_in"}


def test_an_index_with_the_wrong_direction_serves_nothing(declared: dict[str, Any]) -> None:
    descending = QuerySpec("runs", equal=("status",), order=(("created_at", Direction.DESCENDING),))
    assert missing_indexes({"q": descending}, parse_index_file(declared).composites).keys() == {"q"}


def test_equality_fields_may_come_in_any_order_in_an_index() -> None:
    spec = QuerySpec(
        "runs", equal=("owner_id", "agent_id"), order=(("created_at", Direction.ASCENDING),)
    )
    document = {
        "indexes": [
            {
                "collectionGroup": "runs",
                "queryScope": "COLLECTION",
                "fields": [
                    {"fieldPath": "agent_id", "order": "ASCENDING"},
                    {"fieldPath": "owner_id", "order": "ASCENDING"},
                    {"fieldPath": "created_at", "order": "ASCENDING"},
                ],
            }
        ]
    }
    assert missing_indexes({"q": spec}, parse_index_file(document).composites) == {}


@pytest.mark.parametrize(
    "spec",
    [
        QuerySpec("runs", equal=("owner_id", "agent_id")),
        QuerySpec("events", range="seq", order=(("seq", Direction.ASCENDING),)),
        QuerySpec("events", order=(("seq", Direction.DESCENDING),)),
        QuerySpec("users"),
    ],
    ids=["equalities", "range-on-its-order", "one-order", "whole-collection"],
)
def test_single_field_indexes_serve_simple_queries(spec: QuerySpec) -> None:
    assert required_index(spec) is None


def test_a_range_on_one_field_ordered_by_another_needs_both() -> None:
    spec = QuerySpec("runs", range="lease_until", order=(("created_at", Direction.ASCENDING),))
    need = required_index(spec)
    assert need is not None
    assert [f.path for f in need.ordered] == ["lease_until", "created_at"]


def test_no_queried_field_is_exempt_from_indexing(declared: dict[str, Any]) -> None:
    exempt = {
        (o["collectionGroup"], o["fieldPath"])
        for o in declared.get("fieldOverrides", [])
        if o.get("indexes") == []
    }
    queried = {
        (spec.collection, field)
        for spec in QUERIES.values()
        for field in (
            *spec.equal,
            *([spec.range] if spec.range else []),
            *(f for f, _ in spec.order),
        )
    }
    assert queried & exempt == set()


def test_old_events_expire_through_a_ttl_policy(declared: dict[str, Any]) -> None:
    assert parse_index_file(declared).ttls == (TtlField("events", "expire_at"),)


def test_the_store_queries_only_through_its_named_specs() -> None:
    """A query built anywhere but `_query` would escape the index check above."""
    tree = ast.parse(inspect.getsource(firestore))
    builders = {"where", "order_by", "limit", "limit_to_last", "start_at", "collection_group"}
    calls: dict[str, set[str]] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in builders
                ):
                    calls.setdefault(function.name, set()).add(node.func.attr)
    assert set(calls) == {"_query"}, calls
