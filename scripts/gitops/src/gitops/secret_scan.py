"""`gitops scan-secrets`: credentials and Secret data in any tracked file.

gitleaks' maintained rules (plus the repository's `.gitleaks.toml`) find the credentials; this
module adds what gitleaks does not know: Kubernetes Secrets holding data.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops import leaks
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


def _text_files(root: Path, files: Iterable[Path]) -> Iterator[tuple[str, bytes]]:
    """(repository path, content) of each file worth scanning: no binaries, no exempt fixtures."""
    for path in files:
        relative = path.relative_to(root).as_posix()
        if relative.startswith(EXEMPT_PREFIXES) or not path.is_file():
            continue
        if path.stat().st_size > MAX_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        yield relative, data


def scan(root: Path, files: Iterable[Path], gitleaks: str | None = None) -> list[Leak]:
    """Every leak in `files` (paths under `root`), skipping binaries and exempt fixtures.

    With `gitleaks`, its rules run too, over a copy of exactly these files (it would otherwise
    walk untracked trees such as .venv); a line both find is reported once.
    """
    found: list[Leak] = []
    with tempfile.TemporaryDirectory(prefix="gitops-scan-secrets-") as scratch:
        copy = Path(scratch)
        for relative, data in _text_files(root, files):
            found.extend(scan_text(relative, data.decode("utf-8", errors="replace")))
            if gitleaks is not None:
                (copy / relative).parent.mkdir(parents=True, exist_ok=True)
                (copy / relative).write_bytes(data)
        if gitleaks is not None:
            seen = {(leak.path, leak.line) for leak in found}
            for item in leaks.scan(gitleaks, copy, root):
                path = Path(str(item.get("File", "")))
                name = (path if path.is_absolute() else copy / path).relative_to(copy).as_posix()
                line = int(str(item.get("StartLine", 1)))
                if (name, line) in seen:
                    continue
                seen.add((name, line))
                rule = item.get("RuleID")
                kind = f"{item.get('Description') or rule} (gitleaks {rule})"
                found.append(Leak(name, line, kind, str(item.get("Match", ""))))
    return sorted(found, key=lambda leak: (leak.path, leak.line))
