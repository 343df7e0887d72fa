"""fake-gcs-server (./bin, pinned in the Makefile): the Cloud Storage JSON API on loopback.

    from servers.gcs_server import gcs_server  # in a conftest

    def test_x(gcs_server: GcsServer) -> None:
        bucket = gcs_server.new_bucket()  # an empty bucket of the test's own

The fixture starts one in-memory server per session and sets STORAGE_EMULATOR_HOST, which
points google-cloud-storage at it without credentials.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]  # untyped library

from servers.platform import free_port

BINARY = Path(__file__).parents[2] / "bin" / "fake-gcs-server"
START_SECONDS = 30.0
STOP_SECONDS = 10.0
HOST_VARIABLE = "STORAGE_EMULATOR_HOST"


@dataclass(frozen=True)
class GcsServer:
    url: str

    def client(self) -> storage.Client:
        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.url},
        )

    def new_bucket(self) -> str:
        """The name of a new, empty bucket no other test uses."""
        name = f"test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(name)
        return name


@contextlib.contextmanager
def running_gcs_server() -> Iterator[GcsServer]:
    if not BINARY.exists():
        raise RuntimeError(f"{BINARY} is missing: run `make tools`")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="fake-gcs-") as scratch:
        log = Path(scratch) / "server.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    str(BINARY),
                    "-scheme=http",
                    "-host=127.0.0.1",
                    f"-port={port}",
                    "-backend=memory",
                    f"-public-host=127.0.0.1:{port}",
                    f"-external-url={url}",
                    "-log-level=warn",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"fake-gcs-server exited at start:\n{log.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/storage/v1/b", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"fake-gcs-server did not answer:\n{log.read_text()}")
                time.sleep(0.05)  # polling a condition with a deadline
            yield GcsServer(url)
        finally:
            process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_SECONDS)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    with running_gcs_server() as server:
        previous = os.environ.get(HOST_VARIABLE)
        os.environ[HOST_VARIABLE] = server.url
        try:
            yield server
        finally:
            if previous is None:
                os.environ.pop(HOST_VARIABLE, None)
            else:
                os.environ[HOST_VARIABLE] = previous
