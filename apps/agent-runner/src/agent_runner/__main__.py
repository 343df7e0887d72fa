"""`python -m agent_runner` / `agent-runner`: execute the run named by the environment, or, in a
warm sandbox, the run the platform hands over."""

from __future__ import annotations

import importlib
import os
import sys
import threading

from agent_runner import config, handover
from agent_runner.announce import announce
from agent_runner.wire_names import ENV_RUN_ID, ENV_RUN_TOKEN


def main() -> int:
    # The token joins this process's copy of the environment only, never a child's.
    env = dict(os.environ)
    try:
        if (where := handover.address(env)) is not None:
            received = handover.await_handover(handover.bind(*where))
            env = {**env, ENV_RUN_ID: received.run_id, ENV_RUN_TOKEN: received.run_token}
        runner_config = config.load(env)
    except config.ConfigError as exc:
        print(f"agent-runner: ERROR: {exc}", file=sys.stderr)
        return config.EXIT_CANNOT_START
    delivered = announce(runner_config)
    # The SDK takes most of a second to import; load it while the assignment and workspace
    # are fetched, so that the run does not wait for it twice.
    threading.Thread(target=importlib.import_module, args=("anthropic",), daemon=True).start()
    # Only after the announcement: these load asyncio, httpx and pydantic.
    import asyncio

    from agent_runner.run import execute

    return asyncio.run(execute(runner_config, env, delivered=delivered))


if __name__ == "__main__":
    sys.exit(main())
