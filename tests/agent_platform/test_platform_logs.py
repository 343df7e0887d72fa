"""The platform's log lines: secrets masked, identifiers kept, so a run can be traced."""

from __future__ import annotations

import json
import logging
import secrets
import sys

import pytest
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


def _leaked() -> list[str]:
    return [new_secret("run"), new_secret("aps"), f"sk-ant-api03-{secrets.token_urlsafe(60)}"]


# What may stand right before a secret: JSON escapes these (a newline becomes the two characters
# `\n`, "é" becomes `\u00e9`), and a repr in a traceback writes a newline as `\n` already.
NEIGHBOURS = ["\n", "\r\n", "\t", "\x00", "é", "→", "\u2028", '"', "\\", "\\n", "x", "_"]


@pytest.mark.parametrize("before", NEIGHBOURS, ids=ascii)
def test_a_secret_right_after_any_character_is_masked(before: str) -> None:
    for secret in _leaked():
        line = _line(
            "said:%s",
            f"{before}{secret}",
            detail=f"line one{before}{secret}",
            headers={f"{before}{secret}": [f"Bearer{before}{secret}"]},
        )
        assert secret[:-1] not in line
        entry = json.loads(line)
        assert entry["message"] == f"said:{before}[secret]"
        assert entry["detail"] == f"line one{before}[secret]"
        assert entry["headers"] == {f"{before}[secret]": [f"Bearer{before}[secret]"]}


def test_a_secret_in_an_exceptions_text_and_traceback_is_masked() -> None:
    for secret in _leaked():
        try:
            # A KeyError's text is the repr of its argument: the newline appears as `\n`.
            raise KeyError(f"said:\n{secret}\tand é{secret}")
        except KeyError as error:
            exc_info = sys.exc_info()
            record = logging.LogRecord(
                "agent_platform", logging.ERROR, __file__, 1, "failed: %s", (error,), exc_info
            )
            record.error = error
        line = JsonFormatter().format(record)
        assert secret[:-1] not in line
        entry = json.loads(line)
        shown = "'said:\\n[secret]\\tand é[secret]'"
        assert f"KeyError: {shown}" in entry["exception"]
        assert entry["message"] == f"failed: {shown}"
        assert entry["error"] == shown


@pytest.mark.parametrize("before", NEIGHBOURS, ids=ascii)
def test_ids_stay_readable_after_any_character(before: str) -> None:
    run_id, agent_id = new_id("run"), new_id("agt")
    line = _line("run%s%s of%s%s", before, run_id, before, agent_id, run_id=f"{before}{run_id}")
    entry = json.loads(line)
    assert entry["message"] == f"run{before}{run_id} of{before}{agent_id}"
    assert entry["run_id"] == f"{before}{run_id}"
    assert "[secret]" not in line
