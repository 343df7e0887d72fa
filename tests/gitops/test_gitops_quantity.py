"""Kubernetes quantities as the request rules read them."""

from __future__ import annotations

import pytest
from gitops.quantity import GIB, MIB, QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", 0.25),
        ("2", 2.0),
        (1, 1.0),
        ("0.5", 0.5),
        ("512Mi", 512 * MIB),
        ("1.5Gi", 1.5 * GIB),
        ("1G", 1e9),
        ("2e9", 2e9),
        ("128k", 128e3),
    ],
)
def test_a_quantity_is_read_in_base_units(text: object, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "lots", "1 Gi", "1GB", "0x10", True])
def test_something_that_is_not_a_quantity_is_refused(text: object) -> None:
    with pytest.raises(QuantityError, match="not a quantity"):
        parse_quantity(text)
