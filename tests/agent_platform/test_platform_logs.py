"""The platform's log lines: secrets masked, identifiers kept, so a run can be traced."""

from __future__ import annotations

import json
import logging
import secrets
import sys

from agent_platform.auth import new_secret
from agent_platform.domain import new_id
from agent_platform.logs import JsonFormatter


def _line(message: str, *args: object, exc: bool = False, **extra: object) -> str:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(" ".join(str(a) for a in args))
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("agent_platform", logging.INFO, __file__, 1, message, args, exc_info)
    record.__dict__.update(extra)
    return JsonFormatter().format(record)


def test_run_and_agent_ids_stay_readable_in_log_lines() -> None:
    run_id, agent_id, user_id = new_id("run"), new_id("agt"), new_id("usr")
    line = _line("run %s of %s started", run_id, agent_id, run_id=run_id, agent_id=agent_id)
    entry = json.loads(line)
    assert entry["message"] == f"run {run_id} of {agent_id} started"
    assert entry["run_id"] == run_id
    assert entry["agent_id"] == agent_id
    assert user_id in _line("owner %s", user_id)
    assert "[secret]" not in line


def test_every_kind_of_secret_is_masked_wherever_it_appears() -> None:
    leaked = [
        new_secret("ap"),
        new_secret("aps"),
        new_secret("apl"),
        new_secret("run"),
        f"sk-ant-api03-{secrets.token_urlsafe(60)}",
    ]
    run_id = new_id("run")
    for secret in leaked:
        line = _line("sent %s for %s", secret, run_id, exc=True, header=f"Bearer {secret}")
        assert secret not in line
        assert secret[:-1] not in line
        entry = json.loads(line)
        assert entry["message"] == f"sent [secret] for {run_id}"
        assert entry["header"] == "Bearer [secret]"
        assert "[secret]" in entry["exception"]
