"""What a leaked credential looks like in text, and what an obviously fake one looks like."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_PATTERNS = (
    ("Anthropic API key", re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}")),
    ("Google API key", re.compile(r"AIza[0-9A-Za-z_-]{35}")),
    (
        "private key",
        re.compile(
            r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]{0,4096}?"
            r"-----END (?:[A-Z]+ )*PRIVATE KEY-----"
        ),
    ),
)
# Words that mark a value as a placeholder in docs and test fixtures.
_FAKE_MARKERS = (
    "fake",
    "example",
    "dummy",
    "placeholder",
    "redacted",
    "notreal",
    "not-real",
    "test",
)


@dataclass(frozen=True)
class Credential:
    kind: str
    start: int
    text: str


def is_obviously_fake(value: str) -> bool:
    """A placeholder: names itself fake, or is too repetitive to be a generated secret."""
    lowered = value.lower()
    if any(marker in lowered for marker in _FAKE_MARKERS):
        return True
    body = re.sub(r"[^A-Za-z0-9]", "", value)
    return len(set(body)) <= 6


def find_credentials(text: str, *, include_fakes: bool = False) -> Iterator[Credential]:
    """Every credential-shaped string in `text`; placeholders only when `include_fakes`."""
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if include_fakes or not is_obviously_fake(match.group(0)):
                yield Credential(kind, match.start(), match.group(0))


def redact(value: str) -> str:
    """Enough of a credential to find it again, not enough to use it."""
    return f"{value[:10]}…({len(value)} chars)"
