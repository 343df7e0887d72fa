"""What changes per environment and resource between two renders; Secret values never shown."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from gitops.manifests import Resource
from gitops.render import Rendered

REDACTED = "<redacted>"
REDACTED_CHANGED = "<redacted: changed>"


class Change(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class ResourceChange:
    ref: str
    change: Change
    diff: str


@dataclass(frozen=True)
class TargetDiff:
    target: str
    changes: tuple[ResourceChange, ...]
    note: str | None = None  # e.g. the target appears or disappears, or did not render
    broken: bool = False  # base or head did not render


def _redacted(body: Mapping[str, Any], base: Mapping[str, Any] | None) -> dict[str, Any]:
    """A Secret with every value hidden; a value that differs from `base`'s is marked changed."""
    result = dict(body)
    if body.get("kind") != "Secret":
        return result
    for field in ("data", "stringData"):
        values = body.get(field)
        if isinstance(values, Mapping):
            theirs = base.get(field) if base else None
            theirs = theirs if isinstance(theirs, Mapping) else {}
            result[field] = {
                key: REDACTED_CHANGED if key in theirs and theirs[key] != value else REDACTED
                for key, value in values.items()
            }
    return result


def _dump(body: Mapping[str, Any]) -> list[str]:
    return yaml.safe_dump(dict(body), sort_keys=False, default_flow_style=False).splitlines(True)


def diff_resources(target: str, base: Sequence[Resource], head: Sequence[Resource]) -> TargetDiff:
    """Added, removed and changed objects of one target, each with a unified YAML diff."""
    old = {r.key: r for r in base}
    new = {r.key: r for r in head}
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before is not None and after is not None and before.body == after.body:
            continue
        ref = (after or before).ref  # type: ignore[union-attr]
        a = _redacted(before.body, None) if before else None
        b = _redacted(after.body, before.body if before else None) if after else None
        lines = difflib.unified_diff(
            _dump(a) if a is not None else [],
            _dump(b) if b is not None else [],
            fromfile=f"base/{ref}",
            tofile=f"head/{ref}",
        )
        kind = (
            Change.ADDED if before is None else Change.REMOVED if after is None else Change.CHANGED
        )
        changes.append(ResourceChange(ref, kind, "".join(lines)))
    return TargetDiff(target, tuple(changes))


def diff_targets(base: Sequence[Rendered], head: Sequence[Rendered]) -> list[TargetDiff]:
    """Every target of head (then those only in base), each compared with its other render."""
    old = {r.target.name: r for r in base}
    new = {r.target.name: r for r in head}
    diffs = []
    for name in [*new, *(n for n in old if n not in new)]:
        before, after = old.get(name), new.get(name)
        for side, item in (("base", before), ("head", after)):
            if item is not None and item.error is not None:
                note = f"{side} does not render: {item.error}"
                diffs.append(TargetDiff(name, (), note=note, broken=True))
                break
        else:
            changes = diff_resources(
                name, before.resources if before else (), after.resources if after else ()
            ).changes
            appeared = "new environment" if before is None else "removed" if after is None else None
            diffs.append(TargetDiff(name, changes, appeared))
    return diffs


def text(diffs: Sequence[TargetDiff], summaries: Mapping[str, str] | None = None) -> str:
    """The change as plain text; `summaries` adds a line under an environment's heading."""
    lines = []
    for diff in diffs:
        counts = {c: sum(1 for x in diff.changes if x.change is c) for c in Change}
        changed = ", ".join(f"{n} {c.value}" for c, n in counts.items() if n)
        if diff.note:
            lines.append(f"== {diff.target}: {diff.note}")
        if changed or not diff.note:
            lines.append(f"== {diff.target}: {changed or 'no changes'}")
        if summaries and summaries.get(diff.target):
            lines.append(f"   {summaries[diff.target]}")
        for change in diff.changes:
            lines.append(f"-- {change.change.value}: {change.ref}")
            lines.append(change.diff.rstrip("\n"))
    return "\n".join(lines) + "\n"


def markdown(diffs: Sequence[TargetDiff], summaries: Mapping[str, str] | None = None) -> str:
    """The PR comment's text; `summaries` adds a paragraph under an environment's heading."""
    lines = ["### gitops diff", ""]
    for diff in diffs:
        heading = f"#### {diff.target}"
        if diff.note:
            heading += f" ({diff.note})"
        lines.append(heading)
        if summaries and summaries.get(diff.target):
            lines += ["", summaries[diff.target]]
        if not diff.changes:
            lines += ["", "No changes.", ""]
            continue
        lines += ["", "| change | resource |", "|---|---|"]
        lines += [f"| {c.change.value} | `{c.ref}` |" for c in diff.changes]
        lines.append("")
        for change in diff.changes:
            lines += [
                f"<details><summary>{change.change.value}: <code>{change.ref}</code></summary>",
                "",
                "```diff",
                change.diff.rstrip("\n"),
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines) + "\n"
