"""The runner's first sign of life, sent with the standard library alone.

Loading pydantic, httpx and the SDK takes a good part of a second; a subscriber should see the
sandbox come up before that. One quick attempt: if it fails, the reporter sends the run's
events from seq 1 as usual.
"""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

from agent_runner.config import RunnerConfig
from agent_runner.wire_names import EVENTS_PATH, EventType

TIMEOUT_SECONDS = 2.0


def announce(config: RunnerConfig) -> int:
    """Report seq 1, `status: starting`; the number of events delivered (0 or 1)."""
    target = urlsplit(config.platform_url)
    if target.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            target.netloc, timeout=TIMEOUT_SECONDS
        )
    else:
        connection = http.client.HTTPConnection(target.netloc, timeout=TIMEOUT_SECONDS)
    event = {
        "seq": 1,
        "type": EventType.STATUS.value,
        "data": {"status": "starting"},
        "time": datetime.now(UTC).isoformat(),
    }
    path = target.path.rstrip("/") + EVENTS_PATH.format(run_id=config.run_id)
    try:
        connection.request(
            "POST",
            path,
            body=json.dumps({"events": [event]}),
            headers={
                "authorization": f"Bearer {config.run_token}",
                "content-type": "application/json",
            },
        )
        answer = connection.getresponse()
        acked = json.loads(answer.read()).get("acked_seq") if answer.status == 200 else 0
    except (OSError, ValueError, http.client.HTTPException):
        return 0
    finally:
        connection.close()
    return 1 if acked == 1 else 0
