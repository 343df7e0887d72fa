"""Text that any UTF-8 encoder can write: what Claude's API and the platform's events accept.

A workspace's file names need not be UTF-8, and Python reads the bytes that are not as lone
surrogates (U+DC80-U+DCFF); JSON's escapes can spell other lone surrogates. Neither can be
encoded, so they become U+FFFD before text leaves the runner.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticSerializationError, to_json


def valid_unicode(text: str) -> str:
    """`text` with each byte Python could not decode, and each lone surrogate, as U+FFFD."""
    try:
        text.encode()
    except UnicodeEncodeError:
        pass
    else:
        return text
    try:
        # The bytes as they were read; each invalid one then decodes to one U+FFFD.
        return text.encode(errors="surrogateescape").decode(errors="replace")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)


def is_valid_unicode_data(data: dict[str, Any]) -> bool:
    """Whether every string in `data`, keys included, can be written as UTF-8."""
    try:
        to_json(data)
    except PydanticSerializationError:
        return False
    return True


def valid_unicode_data(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with `valid_unicode` applied to every string in it, keys included."""
    if is_valid_unicode_data(data):
        return data
    cleaned: dict[str, Any] = _cleaned(data)
    return cleaned


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, dict):
        return {_cleaned(key): _cleaned(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(item) for item in value]
    return value
