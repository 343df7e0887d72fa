"""The cluster tests share one control plane per session, prepared as cluster_setup describes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.cluster_setup import platform_kubeconfig_of, prepared_control_plane
from servers.control_plane import ControlPlane


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with prepared_control_plane(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


@pytest.fixture(scope="session")
def platform_kubeconfig(control_plane: ControlPlane) -> Path:
    """The API's own identity: a token of the `agent-platform` ServiceAccount."""
    return platform_kubeconfig_of(control_plane)
