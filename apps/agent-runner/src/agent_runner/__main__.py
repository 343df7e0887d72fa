"""`python -m agent_runner` / `agent-runner`: execute the run named by the environment."""

from __future__ import annotations

import asyncio
import os
import sys

from agent_runner import config
from agent_runner.run import EXIT_CANNOT_START, execute


def main() -> int:
    try:
        runner_config = config.load(os.environ)
    except config.ConfigError as exc:
        print(f"agent-runner: ERROR: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return asyncio.run(execute(runner_config, dict(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
