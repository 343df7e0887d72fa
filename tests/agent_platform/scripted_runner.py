"""A stand-in runner for executor and scheduler tests: it speaks the real protocol over HTTP.

What it does is chosen by the first word of its run's task:
  succeed         report a few events and a successful result
  report-env      report its environment and working directory, then succeed
  events N        report N text events in batches, then succeed
  hang            report that it runs, then wait until it is stopped
  hang-stubborn   like hang, but ignore SIGTERM and leave a child process in its group
  exit-silently   exit with code 3 without reporting a result
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
from agent_runner import protocol

run_id = os.environ[protocol.ENV_RUN_ID]
client = httpx.Client(
    base_url=os.environ[protocol.ENV_PLATFORM_URL],
    headers={"Authorization": f"Bearer {os.environ[protocol.ENV_RUN_TOKEN]}"},
    timeout=30,
)
seq = 0


def post(*events: tuple[str, dict[str, Any]]) -> None:
    global seq
    batch = []
    for kind, data in events:
        seq += 1
        batch.append(
            {"seq": seq, "type": kind, "data": data, "time": datetime.now(UTC).isoformat()}
        )
    answer = client.post(protocol.EVENTS_PATH.format(run_id=run_id), json={"events": batch})
    answer.raise_for_status()


def result(outcome: str, messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    usage = {"input_tokens": 10, "output_tokens": 5}
    return "result", {"outcome": outcome, "usage": usage, "new_messages": messages}


assignment = client.get(protocol.ASSIGNMENT_PATH.format(run_id=run_id)).json()
words = assignment["task"].split()
conversation = [
    {"role": "user", "content": assignment["task"]},
    {"role": "assistant", "content": "done"},
]
post(("status", {"status": "running"}))

if words[0] == "succeed":
    post(("text_delta", {"text": f"seen {len(assignment['conversation'])} messages"}))
    post(result("succeeded", conversation))
elif words[0] == "report-env":
    post(("text_delta", {"env": dict(os.environ), "cwd": os.getcwd()}))
    post(result("succeeded", conversation))
elif words[0] == "events":
    total, sent = int(words[1]), 0
    while sent < total:
        size = min(50, total - sent)
        post(*[("text_delta", {"text": str(sent + i)}) for i in range(size)])
        sent += size
    post(result("succeeded", conversation))
elif words[0] in ("hang", "hang-stubborn"):
    if words[0] == "hang-stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "600"])
        post(("text_delta", {"child_pid": child.pid}))
    threading.Event().wait()
elif words[0] == "exit-silently":
    sys.exit(3)
