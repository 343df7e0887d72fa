"""Structured logs: one JSON object per line on stderr, with secrets masked on the way out."""

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
SECRET = re.compile(r"\b(?:(?:aps?|apl|run)_[A-Za-z0-9_\-]{32,}|sk-ant-[A-Za-z0-9_\-]{20,})")
RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "color_message",
}


def mask_secrets(text: str) -> str:
    return SECRET.sub("[secret]", text)


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
        return mask_secrets(json.dumps(entry, default=str))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
