"""The platform's Firestore index file as plain data: what a project's database must have.

`apps/agent-platform/firestore.indexes.json` (the Firebase CLI's format) declares the composite
indexes the store's queries need and, in `fieldOverrides`, the fields Firestore deletes
documents by (`"ttl": true`). The bootstrap creates both from this data, so the file stays the
one place they are declared. Single-field exemptions (an override with `"indexes": []` and no
TTL) only save index writes; the bootstrap leaves them to the Firebase CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gitops.errors import GitopsError

# Firestore's names for them; gcloud's --query-scope takes them in lower case with hyphens.
QUERY_SCOPES: Final = ("COLLECTION", "COLLECTION_GROUP")
ORDERS: Final = ("ASCENDING", "DESCENDING")
# Plain names only: a path goes unquoted into gcloud's --field-config and --filter.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class IndexFileError(GitopsError, ValueError):
    """The index file says something the bootstrap cannot create as written."""


@dataclass(frozen=True)
class IndexField:
    path: str
    order: str  # ASCENDING or DESCENDING


@dataclass(frozen=True)
class CompositeIndex:
    collection_group: str
    query_scope: str  # COLLECTION or COLLECTION_GROUP
    fields: tuple[IndexField, ...]


@dataclass(frozen=True)
class TtlField:
    collection_group: str
    path: str


@dataclass(frozen=True)
class IndexFile:
    composites: tuple[CompositeIndex, ...]
    ttls: tuple[TtlField, ...]


def parse_index_file(document: object) -> IndexFile:
    """The composite indexes and TTL fields of a parsed firestore.indexes.json."""
    if not isinstance(document, Mapping):
        raise IndexFileError("the file must hold one JSON object with `indexes`")
    indexes = _list(document, "indexes", "the file")
    overrides = _list(document, "fieldOverrides", "the file")
    return IndexFile(
        composites=tuple(_composite(entry, n) for n, entry in enumerate(indexes, 1)),
        ttls=tuple(
            ttl for n, entry in enumerate(overrides, 1) if (ttl := _ttl(entry, n)) is not None
        ),
    )


def _list(entry: Mapping[str, object], key: str, where: str) -> Sequence[object]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise IndexFileError(f"{where}: `{key}` must be a list")
    return value


def _name(entry: Mapping[str, object], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise IndexFileError(f"{where}: `{key}` must be a collection group's name, not {value!r}")
    return value


def _path(entry: Mapping[str, object], where: str) -> str:
    value = entry.get("fieldPath")
    if not isinstance(value, str) or not _PATH.fullmatch(value):
        raise IndexFileError(
            f"{where}: `fieldPath` must be a dotted path of plain names, not {value!r}"
        )
    return value


def _composite(entry: object, number: int) -> CompositeIndex:
    where = f"index {number}"
    if not isinstance(entry, Mapping):
        raise IndexFileError(f"{where} must be an object")
    scope = entry.get("queryScope", "COLLECTION")
    if scope not in QUERY_SCOPES:
        raise IndexFileError(f"{where}: `queryScope` must be one of {', '.join(QUERY_SCOPES)}")
    fields = [
        _field(field, f"{where}, field {n}")
        for n, field in enumerate(_list(entry, "fields", where), 1)
    ]
    if not fields:
        raise IndexFileError(f"{where}: `fields` must name at least one field")
    return CompositeIndex(_name(entry, "collectionGroup", where), str(scope), tuple(fields))


def _ttl(entry: object, number: int) -> TtlField | None:
    """The TTL field a field override declares, if it does."""
    where = f"field override {number}"
    if not isinstance(entry, Mapping):
        raise IndexFileError(f"{where} must be an object")
    if entry.get("ttl") is not True:
        return None
    return TtlField(_name(entry, "collectionGroup", where), _path(entry, where))


def _field(entry: object, where: str) -> IndexField:
    if not isinstance(entry, Mapping):
        raise IndexFileError(f"{where} must be an object")
    order = entry.get("order")
    if order not in ORDERS:
        raise IndexFileError(
            f"{where}: the bootstrap creates ordered fields only (`order` ASCENDING or "
            "DESCENDING); create an array or vector index with the Firebase CLI"
        )
    return IndexField(_path(entry, where), str(order))
