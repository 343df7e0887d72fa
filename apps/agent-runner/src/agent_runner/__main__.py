"""`python -m agent_runner` / `agent-runner`: execute the run named by the environment."""

from __future__ import annotations

import importlib
import os
import sys
import threading

from agent_runner import config
from agent_runner.announce import announce


def main() -> int:
    try:
        runner_config = config.load(os.environ)
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

    return asyncio.run(execute(runner_config, dict(os.environ), delivered=delivered))


if __name__ == "__main__":
    sys.exit(main())
