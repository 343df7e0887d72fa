"""Kubernetes resource quantities ("250m", "1.5Gi", "2e9") as numbers."""

from __future__ import annotations

import re

from gitops.errors import GitopsError

_SUFFIXES = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")

GIB = 2.0**30
MIB = 2.0**20


class QuantityError(GitopsError, ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: object) -> float:
    """The quantity as a float in base units (cores, bytes)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise QuantityError(f"{value!r} is not a quantity such as 250m, 512Mi or 2")
    return float(match.group(1)) * _SUFFIXES[match.group(2) or ""]
