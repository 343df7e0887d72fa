"""`gitops scan-secrets`: credentials and Secret data in any tracked file."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops.credentials import find_credentials, is_obviously_fake, redact

# Fixtures for other tools' tests may hold realistic-looking fake secrets on purpose.
EXEMPT_PREFIXES = ("tests/fixtures/",)
MAX_BYTES = 2_000_000


@dataclass(frozen=True)
class Leak:
    path: str
    line: int
    kind: str
    excerpt: str


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _secret_objects(text: str) -> Iterator[tuple[int, str]]:
    """(line, description) of each Kubernetes Secret holding a value that is not a placeholder."""
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return
    for node in documents:
        if not isinstance(node, yaml.MappingNode):
            continue
        fields = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
        kind = fields.get("kind")
        if not isinstance(kind, yaml.ScalarNode) or kind.value != "Secret":
            continue
        for field in ("data", "stringData"):
            values = fields.get(field)
            if not isinstance(values, yaml.MappingNode):
                continue
            for key, value in values.value:
                if (
                    isinstance(value, yaml.ScalarNode)
                    and value.value
                    and not _fake_value(field, value.value)
                ):
                    yield value.start_mark.line + 1, f"Secret {field}.{key.value}"


def _fake_value(field: str, value: str) -> bool:
    if field == "data":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            return False
    return is_obviously_fake(value)


def scan_text(path: str, text: str) -> Iterator[Leak]:
    for credential in find_credentials(text):
        yield Leak(path, _line(text, credential.start), credential.kind, redact(credential.text))
    if path.endswith((".yaml", ".yml")) and "Secret" in text:
        for line, description in _secret_objects(text):
            yield Leak(path, line, "Kubernetes Secret with data", description)


def scan(root: Path, files: Iterable[Path]) -> list[Leak]:
    """Every leak in `files` (paths under `root`), skipping binaries and exempt fixtures."""
    leaks: list[Leak] = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        if relative.startswith(EXEMPT_PREFIXES) or not path.is_file():
            continue
        if path.stat().st_size > MAX_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        leaks.extend(scan_text(relative, data.decode("utf-8", errors="replace")))
    return leaks
