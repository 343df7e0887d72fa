"""The Firestore emulator of the Google Cloud CLI, on a free loopback port, once per session.

    from servers.firestore_emulator import firestore_emulator  # in a conftest

    def test_x(firestore_emulator: FirestoreEmulator) -> None:
        store = FirestoreStore.open(firestore_emulator.new_project())

The fixture sets FIRESTORE_EMULATOR_HOST for the whole session (clients read it when they are
made, platform subprocesses inherit it). Every test takes a project of its own, so tests never
see each other's documents.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from servers.platform import free_port

# The emulator is a JVM behind a Python wrapper: it takes several seconds to answer.
START_SECONDS = 90.0
STOP_SECONDS = 10.0
HOST_VARIABLE = "FIRESTORE_EMULATOR_HOST"


@dataclass(frozen=True)
class FirestoreEmulator:
    host: str  # host:port, as FIRESTORE_EMULATOR_HOST expects it

    @property
    def env(self) -> dict[str, str]:
        return {HOST_VARIABLE: self.host}

    def new_project(self) -> str:
        """A project id no other test uses: an empty database."""
        return f"test-{uuid.uuid4().hex[:16]}"


def _wait_until_answering(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Firestore emulator exited at start:\n{log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)  # polling a condition with a deadline
    raise TimeoutError(
        f"the Firestore emulator did not answer in {START_SECONDS}s:\n{log.read_text()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    # gcloud starts java in its process group: signal the whole group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a java child that outlived its wrapper


@contextlib.contextmanager
def running_emulator() -> Iterator[FirestoreEmulator]:
    host = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="firestore-emulator-") as scratch:
        log = Path(scratch) / "emulator.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["gcloud", "--quiet", "emulators", "firestore", "start", f"--host-port={host}"],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
            )
        try:
            _wait_until_answering(process, f"http://{host}/", log)
            yield FirestoreEmulator(host)
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    with running_emulator() as emulator:
        previous = os.environ.get(HOST_VARIABLE)
        os.environ[HOST_VARIABLE] = emulator.host
        try:
            yield emulator
        finally:
            if previous is None:
                os.environ.pop(HOST_VARIABLE, None)
            else:
                os.environ[HOST_VARIABLE] = previous
