"""Structured logs: one JSON object per line on stderr, with secrets masked on the way out.

Every string is masked before it is serialised: JSON escapes a newline into the characters `\n`
and "é" into `\u00e9`, which would glue a secret to the letters before it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Bearer secrets this platform issues (ap_, aps_, apl_, run_) and Anthropic keys (sk-ant-).
# A platform secret has 43 random characters after its prefix (`auth.new_secret`), an id 20
# hex digits (`domain.new_id`): ids share the `run_` prefix with run tokens, and only the
# length tells them apart, so that run ids stay readable and a run can be traced in the logs.
# No word boundary before the prefix: a secret may follow any character, a letter included (a
# traceback's repr writes a newline as the characters `\n`).
SECRET = re.compile(r"(?:(?:aps?|apl|run)_[A-Za-z0-9_\-]{32,}|sk-ant-[A-Za-z0-9_\-]{20,})")
RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "color_message",
}


def mask_secrets(text: str) -> str:
    return SECRET.sub("[secret]", text)


def _masked(value: object) -> object:
    """`value` with every string in it masked, keys included; other objects as their text."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {mask_secrets(str(k)): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_secrets(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(_masked(entry))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
