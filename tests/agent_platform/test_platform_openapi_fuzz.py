"""Schemathesis against the served OpenAPI spec: whatever it sends, never a 5xx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from servers.platform import running_platform

SCRIPTED_RUNNER = Path(__file__).with_name("scripted_runner.py")


def test_no_generated_request_gets_a_server_error(tmp_path: Path) -> None:
    env = {"AGENT_PLATFORM_RUNNER_COMMAND": json.dumps([sys.executable, str(SCRIPTED_RUNNER)])}
    with running_platform(tmp_path / "p", env) as platform:
        done = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run",
                f"{platform.base_url}/openapi.json",
                "--checks", "not_a_server_error",
                "--max-examples", "20",
                "--seed", "20261126",
                "--request-timeout", "10",
                "--header", f"Authorization: Bearer {platform.token}",
                "--suppress-health-check", "all",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
