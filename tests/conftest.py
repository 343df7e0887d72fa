"""Fixtures shared by every test tree: real services on loopback, started and stopped here.

One Kubernetes control plane serves the whole session, prepared as `cluster.cluster_setup`
describes (the way Argo CD and GKE leave a cluster, the benchmarks share it). It starts only when
a test asks for it, and fails the test when its binaries are missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.cluster_setup import platform_kubeconfig_of, prepared_control_plane
from servers.control_plane import ControlPlane
from servers.messages_api import MessagesApiServer


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with prepared_control_plane(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


@pytest.fixture(scope="session")
def platform_kubeconfig(control_plane: ControlPlane) -> Path:
    """The API's own identity: a token of the `agent-platform` ServiceAccount."""
    return platform_kubeconfig_of(control_plane)


@pytest.fixture(scope="module")
def messages_api() -> Iterator[MessagesApiServer]:
    """A Messages API stand-in on loopback, one per test module: scripts are added per test."""
    server = MessagesApiServer().start()
    yield server
    server.stop()
