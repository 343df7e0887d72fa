"""`python -m agent_runner` / `agent-runner`: execute the run named by the environment."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading

from agent_runner import config
from agent_runner.run import EXIT_CANNOT_START, execute


def main() -> int:
    # The SDK takes most of a second to import; load it while the assignment and workspace
    # are fetched, so the run's first event does not wait for it.
    threading.Thread(target=importlib.import_module, args=("anthropic",), daemon=True).start()
    try:
        runner_config = config.load(os.environ)
    except config.ConfigError as exc:
        print(f"agent-runner: ERROR: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return asyncio.run(execute(runner_config, dict(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
